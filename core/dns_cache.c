/*
 * core/dns_cache.c - the bounded answer cache (see dns_cache.h).
 *
 * Entries come from a pool allocated at creation (entry_count of them) and
 * sit in a chained hash table (buckets: the next power of two at or above
 * entry_count, so chains stay short) and on one LRU list. A get moves its
 * entry to the front; a put evicts from the back until both bounds hold.
 * The hash is seeded from getrandom so names chosen by a sender cannot be
 * aimed at one chain. Any thread; one mutex.
 */
#define _GNU_SOURCE
#include "core/dns_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/assertions.h"

struct dns_cache_entry {
    struct dns_result      *result; /* NULL: on the free list */
    uint64_t                expires_ms;
    uint32_t                hash;
    struct dns_cache_entry *next_in_bucket; /* or the next free entry */
    struct dns_cache_entry *lru_prev;       /* towards the most recently used */
    struct dns_cache_entry *lru_next;
};

struct dns_cache {
    pthread_mutex_t          lock;
    dns_clock_fn             clock;
    void                    *clock_arg;
    uint32_t                 seed;
    uint32_t                 entry_count_max;
    uint32_t                 bucket_mask;
    size_t                   bytes_max;
    size_t                   bytes;
    size_t                   count;
    struct dns_cache_entry  *entries;
    struct dns_cache_entry **buckets;
    struct dns_cache_entry  *free_list;
    struct dns_cache_entry  *lru_first; /* most recently used */
    struct dns_cache_entry  *lru_last;
};

static uint64_t
dns_cache_clock_monotonic_ms(void *clock_arg)
{
    (void)clock_arg;
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail with a valid pointer */
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

int
dns_cache_create(uint32_t entry_count, size_t bytes_max, dns_clock_fn clock, void *clock_arg,
                 struct dns_cache **cache_out)
{
    if (entry_count == 0 || entry_count > DNS_CACHE_ENTRIES_CEILING || bytes_max == 0) {
        return -EINVAL;
    }
    struct dns_cache *cache = calloc(1, sizeof(*cache));
    if (cache == NULL) {
        return -ENOMEM;
    }
    uint32_t bucket_count = 1;
    while (bucket_count < entry_count) {
        bucket_count <<= 1;
    }
    cache->entries = calloc(entry_count, sizeof(*cache->entries));
    cache->buckets = calloc(bucket_count, sizeof(*cache->buckets));
    if (cache->entries == NULL || cache->buckets == NULL) {
        free(cache->entries);
        free(cache->buckets);
        free(cache);
        return -ENOMEM;
    }
    int rc = pthread_mutex_init(&cache->lock, NULL);
    if (rc != 0) {
        free(cache->entries);
        free(cache->buckets);
        free(cache);
        return -rc;
    }
    for (uint32_t i = entry_count; i > 0; i--) {
        cache->entries[i - 1].next_in_bucket = cache->free_list;
        cache->free_list = &cache->entries[i - 1];
    }
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        /* A guessable seed only weakens the spread of chains. */
        seed = (uint32_t)dns_cache_clock_monotonic_ms(NULL) ^ (uint32_t)(uintptr_t)cache;
    }
    cache->seed = seed;
    cache->entry_count_max = entry_count;
    cache->bucket_mask = bucket_count - 1;
    cache->bytes_max = bytes_max;
    cache->clock = clock != NULL ? clock : dns_cache_clock_monotonic_ms;
    cache->clock_arg = clock_arg;
    *cache_out = cache;
    return 0;
}

void
dns_cache_destroy(struct dns_cache **cache)
{
    struct dns_cache *c = *cache;
    if (c == NULL) {
        return;
    }
    for (uint32_t i = 0; i < c->entry_count_max; i++) {
        dns_result_unref(&c->entries[i].result);
    }
    (void)pthread_mutex_destroy(&c->lock); /* nobody holds it now */
    free(c->entries);
    free(c->buckets);
    free(c);
    *cache = NULL;
}

uint64_t
dns_cache_now_ms(const struct dns_cache *cache)
{
    return cache->clock(cache->clock_arg);
}

static uint32_t
dns_cache_hash(const struct dns_cache *cache, enum dns_type type, const char *name)
{
    uint32_t h = (2166136261u ^ cache->seed);
    h = (h ^ (uint32_t)type) * 16777619u;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

static void
lru_unlink(struct dns_cache *cache, struct dns_cache_entry *entry)
{
    if (entry->lru_prev != NULL) {
        entry->lru_prev->lru_next = entry->lru_next;
    } else {
        cache->lru_first = entry->lru_next;
    }
    if (entry->lru_next != NULL) {
        entry->lru_next->lru_prev = entry->lru_prev;
    } else {
        cache->lru_last = entry->lru_prev;
    }
    entry->lru_prev = NULL;
    entry->lru_next = NULL;
}

static void
lru_push_front(struct dns_cache *cache, struct dns_cache_entry *entry)
{
    entry->lru_prev = NULL;
    entry->lru_next = cache->lru_first;
    if (cache->lru_first != NULL) {
        cache->lru_first->lru_prev = entry;
    } else {
        cache->lru_last = entry;
    }
    cache->lru_first = entry;
}

/* Unlink entry from its bucket and the LRU list, put it on the free list
 * and return its result reference for the caller to drop (after unlock). */
static struct dns_result *
entry_remove(struct dns_cache *cache, struct dns_cache_entry *entry)
{
    struct dns_cache_entry **link = &cache->buckets[entry->hash & cache->bucket_mask];
    while (*link != entry) {
        ASSERT(*link != NULL);
        link = &(*link)->next_in_bucket;
    }
    *link = entry->next_in_bucket;
    lru_unlink(cache, entry);
    struct dns_result *result = entry->result;
    ASSERT(result != NULL);
    ASSERT(cache->count > 0);
    ASSERT(cache->bytes >= result->bytes);
    cache->count--;
    cache->bytes -= result->bytes;
    entry->result = NULL;
    entry->next_in_bucket = cache->free_list;
    cache->free_list = entry;
    return result;
}

static struct dns_cache_entry *
entry_find(struct dns_cache *cache, uint32_t hash, enum dns_type type, const char *name)
{
    for (struct dns_cache_entry *e = cache->buckets[hash & cache->bucket_mask]; e != NULL;
         e = e->next_in_bucket) {
        if (e->hash == hash && e->result->answer.type == type &&
            strcmp(e->result->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

int
dns_cache_get(struct dns_cache *cache, enum dns_type type, const char *name,
              struct dns_result **result_out)
{
    ASSERT(cache != NULL);
    uint32_t hash = dns_cache_hash(cache, type, name);
    uint64_t now_ms = cache->clock(cache->clock_arg);
    struct dns_result *expired = NULL;
    int rc = -ENOENT;
    ASSERT(pthread_mutex_lock(&cache->lock) == 0);
    struct dns_cache_entry *entry = entry_find(cache, hash, type, name);
    if (entry != NULL && now_ms >= entry->expires_ms) {
        expired = entry_remove(cache, entry);
    } else if (entry != NULL) {
        *result_out = dns_result_ref(entry->result);
        lru_unlink(cache, entry);
        lru_push_front(cache, entry);
        rc = 0;
    }
    ASSERT(pthread_mutex_unlock(&cache->lock) == 0);
    dns_result_unref(&expired);
    return rc;
}

int
dns_cache_put(struct dns_cache *cache, struct dns_result *result)
{
    ASSERT(cache != NULL);
    ASSERT(result != NULL);
    if (result->answer.ttl == 0 || result->bytes > cache->bytes_max) {
        return -ENOSPC;
    }
    ASSERT(result->name[0] != '\0');
    uint32_t hash = dns_cache_hash(cache, result->answer.type, result->name);
    uint64_t expires_ms = cache->clock(cache->clock_arg) + (uint64_t)result->answer.ttl * 1000u;
    /* Results to drop once the lock is released: the replaced entry and
     * the evicted ones, chained through a small local array in rounds. */
    struct dns_result *dropped[16];
    size_t dropped_count = 0;
    struct dns_result *extra = dns_result_ref(result);
    for (;;) {
        ASSERT(pthread_mutex_lock(&cache->lock) == 0);
        struct dns_cache_entry *old = entry_find(cache, hash, result->answer.type, result->name);
        if (old != NULL) {
            dropped[dropped_count++] = entry_remove(cache, old);
        }
        while (dropped_count < sizeof(dropped) / sizeof(dropped[0]) &&
               (cache->free_list == NULL || cache->bytes + result->bytes > cache->bytes_max)) {
            ASSERT(cache->lru_last != NULL);
            dropped[dropped_count++] = entry_remove(cache, cache->lru_last);
        }
        bool has_room =
            cache->free_list != NULL && cache->bytes + result->bytes <= cache->bytes_max;
        if (has_room) {
            struct dns_cache_entry *entry = cache->free_list;
            cache->free_list = entry->next_in_bucket;
            entry->result = extra;
            extra = NULL;
            entry->expires_ms = expires_ms;
            entry->hash = hash;
            struct dns_cache_entry **bucket = &cache->buckets[hash & cache->bucket_mask];
            entry->next_in_bucket = *bucket;
            *bucket = entry;
            lru_push_front(cache, entry);
            cache->count++;
            cache->bytes += result->bytes;
        }
        ASSERT(pthread_mutex_unlock(&cache->lock) == 0);
        for (size_t i = 0; i < dropped_count; i++) {
            dns_result_unref(&dropped[i]);
        }
        dropped_count = 0;
        if (has_room) {
            return 0;
        }
    }
}

size_t
dns_cache_count(struct dns_cache *cache)
{
    ASSERT(pthread_mutex_lock(&cache->lock) == 0);
    size_t count = cache->count;
    ASSERT(pthread_mutex_unlock(&cache->lock) == 0);
    return count;
}

size_t
dns_cache_bytes(struct dns_cache *cache)
{
    ASSERT(pthread_mutex_lock(&cache->lock) == 0);
    size_t bytes = cache->bytes;
    ASSERT(pthread_mutex_unlock(&cache->lock) == 0);
    return bytes;
}
