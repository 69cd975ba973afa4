/*
 * store/queue_schedule.c - the retry schedule of the outbound queue and
 * its due-time heap (see queue_schedule.h).
 *
 * The back-off is Postfix's: retry_min_s, doubled after each failed
 * attempt, capped at retry_max_s. Jitter of up to 1/16 either way keeps a
 * burst of mail deferred by one outage from coming back in one burst.
 * The heap is an array with its capacity fixed at creation; entries carry
 * a push sequence number so equal due times pop in push order (fair, and
 * deterministic for tests). One thread owns a heap; no locks.
 * Limits: QUEUE_RETRY_S_CEILING, QUEUE_LIFETIME_S_CEILING,
 * QUEUE_DUE_CAPACITY_MAX.
 */
#include "store/queue_schedule.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"

static_assert(QUEUE_RETRY_MIN_S_DEFAULT <= QUEUE_RETRY_MAX_S_DEFAULT, "retry defaults");
static_assert(QUEUE_RETRY_MAX_S_DEFAULT <= QUEUE_RETRY_S_CEILING, "retry ceiling");
static_assert(QUEUE_LIFETIME_S_DEFAULT <= QUEUE_LIFETIME_S_CEILING, "lifetime ceiling");

struct due_slot {
    int64_t  due_s;
    uint64_t sequence; /* push order: ties pop first-in first-out */
    uint32_t rcpt_index;
    char     queue_id[SPOOL_QUEUE_ID_BYTES];
};

struct queue_due {
    size_t           capacity;
    size_t           count;
    uint64_t         sequence_next;
    struct due_slot *slots;
};

static bool slot_before(const struct due_slot *a, const struct due_slot *b);
static void sift_up(struct queue_due *due, size_t index);
static void sift_down(struct queue_due *due, size_t index);

void
queue_schedule_defaults(struct queue_schedule_policy *policy_out)
{
    ASSERT(policy_out != NULL);
    policy_out->retry_min_s = QUEUE_RETRY_MIN_S_DEFAULT;
    policy_out->retry_max_s = QUEUE_RETRY_MAX_S_DEFAULT;
    policy_out->lifetime_s = QUEUE_LIFETIME_S_DEFAULT;
    policy_out->delay_warning_s = QUEUE_DELAY_WARNING_S_DEFAULT;
}

int
queue_schedule_check(const struct queue_schedule_policy *policy)
{
    ASSERT(policy != NULL);
    if (policy->retry_min_s == 0 || policy->retry_min_s > policy->retry_max_s) {
        return -EINVAL;
    }
    if (policy->retry_max_s > QUEUE_RETRY_S_CEILING) {
        return -EINVAL;
    }
    if (policy->lifetime_s > QUEUE_LIFETIME_S_CEILING) {
        return -EINVAL;
    }
    if (policy->delay_warning_s != 0 && policy->delay_warning_s >= policy->lifetime_s) {
        return -EINVAL;
    }
    return 0;
}

uint32_t
queue_schedule_backoff_s(const struct queue_schedule_policy *policy, uint32_t attempts)
{
    ASSERT(policy != NULL);
    ASSERT(attempts >= 1);
    ASSERT(queue_schedule_check(policy) == 0);
    /* Doubling stops at the cap; the loop runs at most log2(ceiling) + 1
     * times whatever attempts is, and uint64_t cannot overflow below it. */
    uint64_t backoff_s = policy->retry_min_s;
    for (uint32_t i = 1; i < attempts && backoff_s < policy->retry_max_s; i++) {
        backoff_s *= 2;
    }
    if (backoff_s > policy->retry_max_s) {
        backoff_s = policy->retry_max_s;
    }
    return (uint32_t)backoff_s;
}

uint32_t
queue_schedule_delay_s(const struct queue_schedule_policy *policy, uint32_t attempts,
                       uint64_t random_bits)
{
    uint32_t backoff_s = queue_schedule_backoff_s(policy, attempts);
    uint64_t spread_s = backoff_s / 16; /* rounds down: no jitter below 16 s */
    /* Uniform enough in [-spread, +spread]: 64 random bits modulo a value
     * under 2^22 has a bias under 2^-40. */
    uint64_t offset_s = random_bits % (2 * spread_s + 1);
    int64_t delay_s = (int64_t)backoff_s - (int64_t)spread_s + (int64_t)offset_s;
    if (delay_s < (int64_t)policy->retry_min_s) {
        delay_s = policy->retry_min_s;
    }
    if (delay_s > (int64_t)policy->retry_max_s) {
        delay_s = policy->retry_max_s;
    }
    return (uint32_t)delay_s;
}

bool
queue_schedule_is_expired(const struct queue_schedule_policy *policy, int64_t arrival_s,
                          int64_t now_s)
{
    ASSERT(policy != NULL);
    /* A clock that went back makes the age negative: not expired. */
    return now_s - arrival_s >= (int64_t)policy->lifetime_s;
}

bool
queue_schedule_is_warning_due(const struct queue_schedule_policy *policy, int64_t arrival_s,
                              int64_t now_s, bool is_warned)
{
    ASSERT(policy != NULL);
    if (policy->delay_warning_s == 0 || is_warned) {
        return false;
    }
    return now_s - arrival_s >= (int64_t)policy->delay_warning_s;
}

void
queue_schedule_after_defer(const struct queue_schedule_policy *policy, int64_t arrival_s,
                           uint32_t attempts, int64_t now_s, bool is_warned,
                           uint64_t random_bits, struct queue_schedule_outcome *outcome_out)
{
    ASSERT(outcome_out != NULL);
    ASSERT(attempts >= 1);
    memset(outcome_out, 0, sizeof(*outcome_out));
    if (queue_schedule_is_expired(policy, arrival_s, now_s)) {
        /* The bounce says everything a warning would. */
        outcome_out->is_expired = true;
        return;
    }
    outcome_out->is_warning_due = queue_schedule_is_warning_due(policy, arrival_s, now_s,
                                                                is_warned);
    int64_t next_s = now_s + (int64_t)queue_schedule_delay_s(policy, attempts, random_bits);
    int64_t expiry_s = arrival_s + (int64_t)policy->lifetime_s;
    outcome_out->next_attempt_s = next_s < expiry_s ? next_s : expiry_s;
    ASSERT(outcome_out->next_attempt_s > now_s);
}

int
queue_due_create(size_t capacity, struct queue_due **due_out)
{
    ASSERT(due_out != NULL);
    *due_out = NULL;
    if (capacity == 0 || capacity > QUEUE_DUE_CAPACITY_MAX) {
        return -EINVAL;
    }
    struct queue_due *due = calloc(1, sizeof(*due));
    if (due == NULL) {
        return -ENOMEM;
    }
    due->slots = calloc(capacity, sizeof(due->slots[0]));
    if (due->slots == NULL) {
        free(due);
        return -ENOMEM;
    }
    due->capacity = capacity;
    *due_out = due;
    return 0;
}

void
queue_due_destroy(struct queue_due **due)
{
    ASSERT(due != NULL);
    if (*due == NULL) {
        return;
    }
    free((*due)->slots);
    free(*due);
    *due = NULL;
}

int
queue_due_push(struct queue_due *due, int64_t due_s, const char *queue_id, uint32_t rcpt_index)
{
    ASSERT(due != NULL);
    ASSERT(queue_id != NULL);
    size_t id_bytes = strnlen(queue_id, SPOOL_QUEUE_ID_BYTES);
    if (id_bytes == 0 || id_bytes == SPOOL_QUEUE_ID_BYTES) {
        return -EINVAL;
    }
    if (due->count == due->capacity) {
        return -ENOSPC;
    }
    struct due_slot *slot = &due->slots[due->count];
    slot->due_s = due_s;
    slot->sequence = due->sequence_next++;
    slot->rcpt_index = rcpt_index;
    memcpy(slot->queue_id, queue_id, id_bytes + 1);
    due->count++;
    sift_up(due, due->count - 1);
    return 0;
}

int
queue_due_pop(struct queue_due *due, int64_t now_s, struct queue_due_entry *entry_out)
{
    ASSERT(due != NULL);
    ASSERT(entry_out != NULL);
    if (due->count == 0) {
        return -ENOENT;
    }
    const struct due_slot *top = &due->slots[0];
    if (top->due_s > now_s) {
        return -EAGAIN;
    }
    entry_out->due_s = top->due_s;
    entry_out->rcpt_index = top->rcpt_index;
    memcpy(entry_out->queue_id, top->queue_id, sizeof(entry_out->queue_id));
    due->count--;
    if (due->count > 0) {
        due->slots[0] = due->slots[due->count];
        sift_down(due, 0);
    }
    return 0;
}

int
queue_due_next(const struct queue_due *due, int64_t *due_s_out)
{
    ASSERT(due != NULL);
    ASSERT(due_s_out != NULL);
    if (due->count == 0) {
        return -ENOENT;
    }
    *due_s_out = due->slots[0].due_s;
    return 0;
}

size_t
queue_due_remove(struct queue_due *due, const char *queue_id)
{
    ASSERT(due != NULL);
    ASSERT(queue_id != NULL);
    /* Compact the survivors in array order, then rebuild the heap bottom
     * up (O(n)); sequence numbers keep their tie order. */
    size_t kept = 0;
    for (size_t i = 0; i < due->count; i++) {
        if (strncmp(due->slots[i].queue_id, queue_id, SPOOL_QUEUE_ID_BYTES) == 0) {
            continue;
        }
        due->slots[kept++] = due->slots[i];
    }
    size_t removed = due->count - kept;
    due->count = kept;
    for (size_t i = kept / 2; i > 0; i--) {
        sift_down(due, i - 1);
    }
    return removed;
}

size_t
queue_due_count(const struct queue_due *due)
{
    ASSERT(due != NULL);
    return due->count;
}

static bool
slot_before(const struct due_slot *a, const struct due_slot *b)
{
    if (a->due_s != b->due_s) {
        return a->due_s < b->due_s;
    }
    return a->sequence < b->sequence;
}

static void
sift_up(struct queue_due *due, size_t index)
{
    ASSERT(index < due->count);
    struct due_slot moving = due->slots[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!slot_before(&moving, &due->slots[parent])) {
            break;
        }
        due->slots[index] = due->slots[parent];
        index = parent;
    }
    due->slots[index] = moving;
}

static void
sift_down(struct queue_due *due, size_t index)
{
    ASSERT(index < due->count);
    struct due_slot moving = due->slots[index];
    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= due->count) {
            break;
        }
        if (child + 1 < due->count && slot_before(&due->slots[child + 1], &due->slots[child])) {
            child++;
        }
        if (!slot_before(&due->slots[child], &moving)) {
            break;
        }
        due->slots[index] = due->slots[child];
        index = child;
    }
    due->slots[index] = moving;
}
