/*
 * tests/unit/test_queue_schedule.c - the outbound retry schedule and its
 * due heap (store/queue_schedule). The back-off is checked against the
 * doubling sequence written out by hand (5m, 10m, 20m, 40m, 70m, 70m ...),
 * jitter against its bounds over many random values, the lifetime at
 * exactly 5 days and a second either side, the delay warning once, the
 * policy checks at each bound; the heap against a sorted reference under
 * random pushes and pops, its capacity at max - 1, max, max + 1, ties in
 * push order, and removal of one message's entries.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/queue_schedule.h"
#include "tests/unit/unit.h"

int main(void);

static uint64_t rng_state = 42;

static uint64_t
rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
test_defaults_and_check(void)
{
    struct queue_schedule_policy policy;
    queue_schedule_defaults(&policy);
    CHECK(policy.retry_min_s == 300);
    CHECK(policy.retry_max_s == 4200);
    CHECK(policy.lifetime_s == 5 * 86400);
    CHECK(policy.delay_warning_s == 0);
    CHECK(queue_schedule_check(&policy) == 0);

    struct queue_schedule_policy bad = policy;
    bad.retry_min_s = 0;
    CHECK(queue_schedule_check(&bad) == -EINVAL);
    bad = policy;
    bad.retry_min_s = bad.retry_max_s + 1;
    CHECK(queue_schedule_check(&bad) == -EINVAL);
    bad.retry_min_s = bad.retry_max_s; /* equal is fine: a constant back-off */
    CHECK(queue_schedule_check(&bad) == 0);
    bad = policy;
    bad.retry_max_s = QUEUE_RETRY_S_CEILING;
    CHECK(queue_schedule_check(&bad) == 0);
    bad.retry_max_s = QUEUE_RETRY_S_CEILING + 1;
    CHECK(queue_schedule_check(&bad) == -EINVAL);
    bad = policy;
    bad.lifetime_s = QUEUE_LIFETIME_S_CEILING;
    CHECK(queue_schedule_check(&bad) == 0);
    bad.lifetime_s = QUEUE_LIFETIME_S_CEILING + 1;
    CHECK(queue_schedule_check(&bad) == -EINVAL);
    bad = policy;
    bad.delay_warning_s = bad.lifetime_s - 1;
    CHECK(queue_schedule_check(&bad) == 0);
    bad.delay_warning_s = bad.lifetime_s;
    CHECK(queue_schedule_check(&bad) == -EINVAL);
}

static void
test_backoff_doubles(void)
{
    struct queue_schedule_policy policy;
    queue_schedule_defaults(&policy);
    static const uint32_t want_s[] = {300, 600, 1200, 2400, 4200, 4200, 4200};
    for (uint32_t i = 0; i < sizeof(want_s) / sizeof(want_s[0]); i++) {
        CHECK(queue_schedule_backoff_s(&policy, i + 1) == want_s[i]);
    }
    /* Huge attempt counts neither overflow nor loop long. */
    CHECK(queue_schedule_backoff_s(&policy, UINT32_MAX) == 4200);
    /* Seconds, as the tests of the daemon set them: 1s, 4s. */
    policy.retry_min_s = 1;
    policy.retry_max_s = 4;
    CHECK(queue_schedule_backoff_s(&policy, 1) == 1);
    CHECK(queue_schedule_backoff_s(&policy, 2) == 2);
    CHECK(queue_schedule_backoff_s(&policy, 3) == 4);
    CHECK(queue_schedule_backoff_s(&policy, 4) == 4);
    /* No jitter below 16 s: tests get exact times. */
    CHECK(queue_schedule_delay_s(&policy, 1, 12345) == 1);
    CHECK(queue_schedule_delay_s(&policy, 3, 99999) == 4);
    /* Ceiling values. */
    policy.retry_min_s = QUEUE_RETRY_S_CEILING;
    policy.retry_max_s = QUEUE_RETRY_S_CEILING;
    CHECK(queue_schedule_backoff_s(&policy, 40) == QUEUE_RETRY_S_CEILING);
}

static void
test_jitter_bounds(void)
{
    struct queue_schedule_policy policy;
    queue_schedule_defaults(&policy);
    for (uint32_t attempts = 1; attempts <= 6; attempts++) {
        uint32_t base_s = queue_schedule_backoff_s(&policy, attempts);
        uint32_t low_s = UINT32_MAX;
        uint32_t high_s = 0;
        bool is_bad = false;
        for (int i = 0; i < 5000; i++) {
            uint32_t d = queue_schedule_delay_s(&policy, attempts, rng());
            low_s = d < low_s ? d : low_s;
            high_s = d > high_s ? d : high_s;
            if (d < policy.retry_min_s || d > policy.retry_max_s) {
                is_bad = true;
            }
            if (d + base_s / 16 < base_s || d > base_s + base_s / 16) {
                is_bad = true;
            }
        }
        CHECK(!is_bad);
        /* It does spread: not every value the same. */
        CHECK(high_s > low_s);
    }
    /* The extremes of the random value land on the extremes. */
    CHECK(queue_schedule_delay_s(&policy, 2, 0) == 600 - 37);
    CHECK(queue_schedule_delay_s(&policy, 2, 74) == 600 + 37);
    CHECK(queue_schedule_delay_s(&policy, 1, 0) == 300); /* held at retry_min_s */
    CHECK(queue_schedule_delay_s(&policy, 9, 2 * 262) == 4200); /* held at retry_max_s */
}

static void
test_lifetime_and_warning(void)
{
    struct queue_schedule_policy policy;
    queue_schedule_defaults(&policy);
    const int64_t arrival_s = 1700000000;
    const int64_t life_s = 5 * 86400;
    CHECK(!queue_schedule_is_expired(&policy, arrival_s, arrival_s + life_s - 1));
    CHECK(queue_schedule_is_expired(&policy, arrival_s, arrival_s + life_s));
    CHECK(queue_schedule_is_expired(&policy, arrival_s, arrival_s + life_s + 1));
    CHECK(!queue_schedule_is_expired(&policy, arrival_s, arrival_s - 100)); /* clock stepped back */

    struct queue_schedule_outcome outcome;
    queue_schedule_after_defer(&policy, arrival_s, 30, arrival_s + life_s, false, 0, &outcome);
    CHECK(outcome.is_expired);
    CHECK(!outcome.is_warning_due);
    /* One second before expiry: the next attempt is at the expiry, not
     * 70 minutes later. */
    queue_schedule_after_defer(&policy, arrival_s, 30, arrival_s + life_s - 1, false, 0,
                               &outcome);
    CHECK(!outcome.is_expired);
    CHECK(outcome.next_attempt_s == arrival_s + life_s);
    /* Far from expiry: now + delay. */
    queue_schedule_after_defer(&policy, arrival_s, 1, arrival_s + 10, false, 0, &outcome);
    CHECK(!outcome.is_expired);
    CHECK(outcome.next_attempt_s == arrival_s + 10 + 300);

    /* Warnings off by default. */
    CHECK(!queue_schedule_is_warning_due(&policy, arrival_s, arrival_s + life_s - 1, false));
    policy.delay_warning_s = 4 * 3600;
    CHECK(!queue_schedule_is_warning_due(&policy, arrival_s, arrival_s + 4 * 3600 - 1, false));
    CHECK(queue_schedule_is_warning_due(&policy, arrival_s, arrival_s + 4 * 3600, false));
    CHECK(!queue_schedule_is_warning_due(&policy, arrival_s, arrival_s + 4 * 3600, true));
    /* Once: the caller records it, and later deferrals do not warn again. */
    bool is_warned = false;
    int warnings = 0;
    int64_t now_s = arrival_s;
    uint32_t attempts = 0;
    for (int i = 0; i < 200; i++) {
        attempts++;
        queue_schedule_after_defer(&policy, arrival_s, attempts, now_s, is_warned, rng(),
                                   &outcome);
        if (outcome.is_expired) {
            break;
        }
        if (outcome.is_warning_due) {
            warnings++;
            is_warned = true;
            CHECK(now_s - arrival_s >= 4 * 3600);
        }
        CHECK(outcome.next_attempt_s > now_s);
        now_s = outcome.next_attempt_s;
    }
    CHECK(outcome.is_expired);
    CHECK(now_s == arrival_s + life_s); /* the last attempt at the end of the lifetime */
    CHECK(warnings == 1);
}

/* The reference: an array sorted by (due, push order). */
struct ref_entry {
    int64_t  due_s;
    uint64_t order;
    uint32_t rcpt_index;
    char     id[SPOOL_QUEUE_ID_BYTES];
};

static int
ref_compare(const void *a, const void *b)
{
    const struct ref_entry *x = a;
    const struct ref_entry *y = b;
    if (x->due_s != y->due_s) {
        return x->due_s < y->due_s ? -1 : 1;
    }
    return x->order < y->order ? -1 : (x->order > y->order ? 1 : 0);
}

static void
test_heap_against_reference(void)
{
    enum { CAPACITY = 2000 };
    struct queue_due *due = NULL;
    CHECK(queue_due_create(CAPACITY, &due) == 0);
    struct ref_entry *ref = calloc(CAPACITY, sizeof(*ref));
    if (due == NULL || ref == NULL) {
        abort();
    }
    size_t ref_count = 0;
    uint64_t order = 0;
    int64_t now_s = 1000;
    bool is_bad = false;
    for (int step = 0; step < 50000; step++) {
        uint64_t r = rng();
        if (r % 3 != 0 && ref_count < CAPACITY) {
            struct ref_entry e = {.due_s = now_s + (int64_t)(rng() % 500), .order = order++,
                                  .rcpt_index = (uint32_t)(rng() % 1000)};
            (void)snprintf(e.id, sizeof(e.id), "%016llx", (unsigned long long)(rng() % 50));
            if (queue_due_push(due, e.due_s, e.id, e.rcpt_index) != 0) {
                is_bad = true;
            }
            ref[ref_count++] = e;
            qsort(ref, ref_count, sizeof(ref[0]), ref_compare);
        } else {
            now_s += (int64_t)(rng() % 20);
            struct queue_due_entry got;
            int rc = queue_due_pop(due, now_s, &got);
            if (ref_count == 0) {
                is_bad |= rc != -ENOENT;
            } else if (ref[0].due_s > now_s) {
                is_bad |= rc != -EAGAIN;
            } else {
                is_bad |= rc != 0;
                is_bad |= got.due_s != ref[0].due_s;
                is_bad |= got.rcpt_index != ref[0].rcpt_index;
                is_bad |= strcmp(got.queue_id, ref[0].id) != 0;
                memmove(ref, ref + 1, (ref_count - 1) * sizeof(ref[0]));
                ref_count--;
            }
        }
        is_bad |= queue_due_count(due) != ref_count;
        int64_t next_s;
        if (ref_count > 0) {
            is_bad |= queue_due_next(due, &next_s) != 0 || next_s != ref[0].due_s;
        } else {
            is_bad |= queue_due_next(due, &next_s) != -ENOENT;
        }
    }
    CHECK(!is_bad);
    /* Remove one message's entries, then drain in order. */
    char victim[SPOOL_QUEUE_ID_BYTES];
    memcpy(victim, ref[ref_count / 2].id, sizeof(victim));
    size_t victims = 0;
    size_t kept = 0;
    for (size_t i = 0; i < ref_count; i++) {
        if (strcmp(ref[i].id, victim) == 0) {
            victims++;
        } else {
            ref[kept++] = ref[i];
        }
    }
    CHECK(victims > 0);
    CHECK(queue_due_remove(due, victim) == victims);
    ref_count = kept;
    CHECK(queue_due_count(due) == ref_count);
    for (size_t i = 0; i < ref_count; i++) {
        struct queue_due_entry got;
        int rc = queue_due_pop(due, INT64_MAX, &got);
        is_bad |= rc != 0 || got.due_s != ref[i].due_s || strcmp(got.queue_id, ref[i].id) != 0 ||
                  got.rcpt_index != ref[i].rcpt_index;
    }
    CHECK(!is_bad);
    struct queue_due_entry none;
    CHECK(queue_due_pop(due, INT64_MAX, &none) == -ENOENT);
    free(ref);
    queue_due_destroy(&due);
    CHECK(due == NULL);
    queue_due_destroy(&due); /* NULL is fine */
}

static void
test_heap_bounds(void)
{
    struct queue_due *due = NULL;
    CHECK(queue_due_create(0, &due) == -EINVAL);
    CHECK(due == NULL);
    CHECK(queue_due_create(QUEUE_DUE_CAPACITY_MAX + 1, &due) == -EINVAL);
    CHECK(queue_due_create(3, &due) == 0);
    CHECK(queue_due_push(due, 5, "00000000000000a1", 0) == 0); /* max - 2 free after */
    CHECK(queue_due_push(due, 5, "00000000000000a2", 1) == 0); /* max - 1 */
    CHECK(queue_due_push(due, 5, "00000000000000a3", 2) == 0); /* max */
    CHECK(queue_due_push(due, 1, "00000000000000a4", 3) == -ENOSPC); /* max + 1 */
    CHECK(queue_due_count(due) == 3);
    /* Ids: empty, exactly SPOOL_QUEUE_ID_BYTES - 1, one more. */
    queue_due_destroy(&due);
    CHECK(queue_due_create(4, &due) == 0);
    CHECK(queue_due_push(due, 1, "", 0) == -EINVAL);
    CHECK(queue_due_push(due, 1, "0123456789abcdef0", 0) == -EINVAL);
    CHECK(queue_due_push(due, 1, "0123456789abcdef", 0) == 0);
    /* Ties pop in push order. */
    CHECK(queue_due_push(due, 7, "b", 1) == 0);
    CHECK(queue_due_push(due, 7, "c", 2) == 0);
    CHECK(queue_due_push(due, 7, "a", 3) == 0);
    struct queue_due_entry got;
    CHECK(queue_due_pop(due, 0, &got) == -EAGAIN);
    CHECK(queue_due_pop(due, 1, &got) == 0 && got.rcpt_index == 0);
    CHECK(queue_due_pop(due, 6, &got) == -EAGAIN);
    CHECK(queue_due_pop(due, 7, &got) == 0 && strcmp(got.queue_id, "b") == 0);
    CHECK(queue_due_pop(due, 7, &got) == 0 && strcmp(got.queue_id, "c") == 0);
    CHECK(queue_due_pop(due, 7, &got) == 0 && strcmp(got.queue_id, "a") == 0);
    CHECK(queue_due_remove(due, "a") == 0);
    queue_due_destroy(&due);
}

int
main(void)
{
    test_defaults_and_check();
    test_backoff_doubles();
    test_jitter_bounds();
    test_lifetime_and_warning();
    test_heap_against_reference();
    test_heap_bounds();
    UNIT_DONE();
}
