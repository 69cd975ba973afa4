/*
 * core/send_limit.c - the per-user sending counters (core/send_limit.h).
 *
 * A set-associative table made once: a user's name hashes to one set of
 * SEND_LIMIT_WAYS entries, each holding the name and twelve five-minute
 * buckets. Every operation touches one set under the table's mutex, so
 * it costs the same whatever the table holds. Any thread.
 * Limits: SEND_LIMIT_SETS * SEND_LIMIT_WAYS users remembered.
 */
#include "core/send_limit.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/hash.h"

static_assert((SEND_LIMIT_SETS & (SEND_LIMIT_SETS - 1)) == 0, "sets are a power of two");

struct send_limit_entry {
    char     user[SEND_LIMIT_USER_BYTES]; /* "" = free */
    uint64_t newest_slot;                 /* bucket number (now / SEND_LIMIT_BUCKET_S) */
    uint64_t last_seen_s;
    uint32_t counts[SEND_LIMIT_BUCKETS];  /* counts[slot % SEND_LIMIT_BUCKETS] */
};

struct send_limit {
    pthread_mutex_t          lock;
    uint32_t                 messages_per_hour;
    struct send_limit_entry *entries; /* SEND_LIMIT_SETS * SEND_LIMIT_WAYS */
};

int
send_limit_create(uint32_t messages_per_hour, struct send_limit **limit_out)
{
    struct send_limit *limit = calloc(1, sizeof(*limit));
    if (limit == NULL) {
        return -ENOMEM;
    }
    limit->messages_per_hour = messages_per_hour;
    if (messages_per_hour > 0) {
        limit->entries = calloc((size_t)SEND_LIMIT_SETS * SEND_LIMIT_WAYS,
                                sizeof(*limit->entries));
        if (limit->entries == NULL) {
            free(limit);
            return -ENOMEM;
        }
    }
    pthread_mutex_init(&limit->lock, NULL);
    *limit_out = limit;
    return 0;
}

void
send_limit_destroy(struct send_limit **limit_ptr)
{
    struct send_limit *limit = *limit_ptr;
    if (limit == NULL) {
        return;
    }
    pthread_mutex_destroy(&limit->lock);
    free(limit->entries);
    free(limit);
    *limit_ptr = NULL;
}

/* Move an entry's window to now: buckets that fell out of it are cleared. */
static void
entry_advance(struct send_limit_entry *entry, uint64_t slot)
{
    if (slot <= entry->newest_slot) {
        return; /* same bucket (or a clock that went back: keep the counts) */
    }
    uint64_t gap = slot - entry->newest_slot;
    if (gap >= SEND_LIMIT_BUCKETS) {
        memset(entry->counts, 0, sizeof(entry->counts));
    } else {
        for (uint64_t s = entry->newest_slot + 1; s <= slot; s++) {
            entry->counts[s % SEND_LIMIT_BUCKETS] = 0;
        }
    }
    entry->newest_slot = slot;
}

static uint32_t
entry_sum(const struct send_limit_entry *entry)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < SEND_LIMIT_BUCKETS; i++) {
        sum += entry->counts[i];
    }
    return sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

/* The user's entry, or (is_creating) a new one in its set; NULL if the user
 * has none and none is made. Called with the lock held. */
static struct send_limit_entry *
entry_find(struct send_limit *limit, const char *user, uint64_t now_s, bool is_creating)
{
    uint64_t slot = now_s / SEND_LIMIT_BUCKET_S;
    size_t set = hash_fnv1a_string(user) & (SEND_LIMIT_SETS - 1);
    struct send_limit_entry *ways = &limit->entries[set * SEND_LIMIT_WAYS];
    struct send_limit_entry *victim = NULL;
    for (size_t i = 0; i < SEND_LIMIT_WAYS; i++) {
        struct send_limit_entry *entry = &ways[i];
        if (entry->user[0] != '\0' && strcmp(entry->user, user) == 0) {
            entry_advance(entry, slot);
            entry->last_seen_s = now_s;
            return entry;
        }
        if (entry->user[0] != '\0') {
            entry_advance(entry, slot);
            if (entry_sum(entry) == 0) {
                entry->user[0] = '\0'; /* nothing left to remember */
            }
        }
        if (victim == NULL || (victim->user[0] != '\0' &&
                               (entry->user[0] == '\0' ||
                                entry->last_seen_s < victim->last_seen_s))) {
            victim = entry;
        }
    }
    if (!is_creating) {
        return NULL;
    }
    ASSERT(victim != NULL);
    memset(victim, 0, sizeof(*victim));
    size_t len = strnlen(user, SEND_LIMIT_USER_BYTES - 1);
    memcpy(victim->user, user, len);
    victim->user[len] = '\0';
    victim->newest_slot = slot;
    victim->last_seen_s = now_s;
    return victim;
}

bool
send_limit_allows(struct send_limit *limit, const char *user, uint64_t now_s)
{
    return limit->messages_per_hour == 0 ||
           send_limit_sent(limit, user, now_s) < limit->messages_per_hour;
}

void
send_limit_count(struct send_limit *limit, const char *user, uint64_t now_s)
{
    if (limit->messages_per_hour == 0) {
        return;
    }
    pthread_mutex_lock(&limit->lock);
    struct send_limit_entry *entry = entry_find(limit, user, now_s, true);
    uint32_t *count = &entry->counts[entry->newest_slot % SEND_LIMIT_BUCKETS];
    if (*count < UINT32_MAX) {
        (*count)++;
    }
    pthread_mutex_unlock(&limit->lock);
}

uint32_t
send_limit_sent(struct send_limit *limit, const char *user, uint64_t now_s)
{
    if (limit->messages_per_hour == 0) {
        return 0;
    }
    pthread_mutex_lock(&limit->lock);
    struct send_limit_entry *entry = entry_find(limit, user, now_s, false);
    uint32_t sent = entry != NULL ? entry_sum(entry) : 0;
    pthread_mutex_unlock(&limit->lock);
    return sent;
}
