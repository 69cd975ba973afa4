/*
 * core/kv.c - the key-value interface's dispatch and its embedded backend
 * (see kv.h).
 *
 * The embedded table is set-associative: entry_count entries in sets of
 * KV_EMBEDDED_WAYS, a key's set chosen by a seeded FNV-1a hash. Lookups
 * read one set; a new key takes a free or expired entry of its set, else
 * the set's least recently written entry is evicted, so the memory is fixed
 * at creation whatever the callers (or the clients behind them) do. Sets
 * are guarded by KV_LOCK_STRIPES mutexes (set number modulo the stripes):
 * every call holds one for a few hundred nanoseconds and never does I/O,
 * so reactor threads may call it. Any thread.
 * Limits: KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX, KV_EMBEDDED_ENTRIES_CEILING
 * (core/limits.h).
 */
#define _GNU_SOURCE
#include "core/kv.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/assertions.h"

#define KV_LOCK_STRIPES 64u
#define KV_COUNTER_DIGITS_MAX 20 /* UINT64_MAX has 20 digits */

static_assert(KV_KEY_BYTES_MAX <= UINT8_MAX, "key length fits the entry's byte");
static_assert(KV_VALUE_BYTES_MAX <= UINT8_MAX, "value length fits the entry's byte");
static_assert(KV_VALUE_BYTES_MAX >= KV_COUNTER_DIGITS_MAX, "a counter fits a value");
static_assert((uint64_t)KV_EMBEDDED_ENTRIES_CEILING + KV_EMBEDDED_WAYS <= UINT32_MAX,
              "entry counts fit u32");

struct kv_entry {
    uint64_t expires_ms; /* 0: no expiry */
    uint64_t written;    /* kv_embedded.write_sequence at the last write; 0: free */
    uint32_t hash;
    uint8_t  key_len;
    uint8_t  value_len;
    uint8_t  key[KV_KEY_BYTES_MAX];
    uint8_t  value[KV_VALUE_BYTES_MAX];
};

struct kv_embedded {
    struct kv        base; /* first: a struct kv * is a struct kv_embedded * */
    kv_clock_fn      clock;
    void            *clock_arg;
    uint32_t         seed;
    uint32_t         set_count;
    uint64_t         write_sequence; /* atomic; orders writes for eviction */
    struct kv_entry *entries;        /* set_count * KV_EMBEDDED_WAYS */
    pthread_mutex_t  locks[KV_LOCK_STRIPES];
};

static const struct kv_ops kv_embedded_ops;

/* See kv_thread_may_wait: false in every new thread. */
static __thread bool kv_thread_waits;

/* ---- the interface ------------------------------------------------------ */

void
kv_destroy(struct kv **kv)
{
    if (*kv == NULL) {
        return;
    }
    (*kv)->ops->destroy(*kv);
    *kv = NULL;
}

static bool
kv_key_ok(const void *key, size_t key_len)
{
    return key != NULL && key_len > 0 && key_len <= KV_KEY_BYTES_MAX;
}

int
kv_set(struct kv *kv, const void *key, size_t key_len, const void *value, size_t value_len,
       uint32_t ttl_s)
{
    ASSERT(kv != NULL);
    if (!kv_key_ok(key, key_len) || value_len > KV_VALUE_BYTES_MAX ||
        (value == NULL && value_len > 0)) {
        return -EINVAL;
    }
    return kv->ops->set(kv, key, key_len, value, value_len, ttl_s);
}

int
kv_get(struct kv *kv, const void *key, size_t key_len, void *value_out, size_t value_bytes,
       size_t *value_len_out)
{
    ASSERT(kv != NULL);
    ASSERT(value_len_out != NULL);
    if (!kv_key_ok(key, key_len)) {
        return -EINVAL;
    }
    return kv->ops->get(kv, key, key_len, value_out, value_bytes, value_len_out);
}

int
kv_delete(struct kv *kv, const void *key, size_t key_len)
{
    ASSERT(kv != NULL);
    if (!kv_key_ok(key, key_len)) {
        return -EINVAL;
    }
    return kv->ops->del(kv, key, key_len);
}

int
kv_incr(struct kv *kv, const void *key, size_t key_len, uint32_t ttl_s, uint64_t *value_out)
{
    ASSERT(kv != NULL);
    ASSERT(value_out != NULL);
    if (!kv_key_ok(key, key_len)) {
        return -EINVAL;
    }
    return kv->ops->incr(kv, key, key_len, ttl_s, value_out);
}

size_t
kv_count(struct kv *kv)
{
    ASSERT(kv != NULL);
    return kv->ops->count(kv);
}

const char *
kv_backend_name(const struct kv *kv)
{
    ASSERT(kv != NULL);
    return kv->ops->name;
}

void
kv_thread_may_wait(bool may_wait)
{
    kv_thread_waits = may_wait;
}

bool
kv_thread_can_wait(void)
{
    return kv_thread_waits;
}

/* ---- the embedded backend ----------------------------------------------- */

static uint64_t
kv_clock_monotonic_ms(void *clock_arg)
{
    (void)clock_arg;
    struct timespec now;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

int
kv_embedded_create(uint32_t entry_count, kv_clock_fn clock, void *clock_arg,
                   struct kv **kv_out)
{
    if (entry_count == 0 || entry_count > KV_EMBEDDED_ENTRIES_CEILING) {
        return -EINVAL;
    }
    struct kv_embedded *store = calloc(1, sizeof(*store));
    if (store == NULL) {
        return -ENOMEM;
    }
    /* Rounded up: a partial set would still need all its ways. */
    store->set_count = (entry_count + KV_EMBEDDED_WAYS - 1) / KV_EMBEDDED_WAYS;
    /* calloc of this size maps zero pages: memory is spent as sets fill. */
    store->entries = calloc((size_t)store->set_count * KV_EMBEDDED_WAYS, sizeof(struct kv_entry));
    if (store->entries == NULL) {
        free(store);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < KV_LOCK_STRIPES; i++) {
        int rc = pthread_mutex_init(&store->locks[i], NULL);
        if (rc != 0) {
            for (uint32_t k = 0; k < i; k++) {
                (void)pthread_mutex_destroy(&store->locks[k]); /* unused, cannot be busy */
            }
            free(store->entries);
            free(store);
            return -rc;
        }
    }
    /* A seed the clients cannot guess, so they cannot aim their keys at one
     * set; a short read only weakens that, it is not an error. */
    uint32_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        seed = (uint32_t)kv_clock_monotonic_ms(NULL) ^ (uint32_t)(uintptr_t)store;
    }
    store->seed = seed;
    store->clock = clock != NULL ? clock : kv_clock_monotonic_ms;
    store->clock_arg = clock_arg;
    store->base.ops = &kv_embedded_ops;
    *kv_out = &store->base;
    return 0;
}

static uint32_t
kv_embedded_hash(const struct kv_embedded *store, const void *key, size_t key_len)
{
    const unsigned char *p = key;
    uint32_t h = 2166136261u ^ store->seed;
    for (size_t i = 0; i < key_len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static bool
kv_entry_is_expired(const struct kv_entry *entry, uint64_t now_ms)
{
    return entry->expires_ms != 0 && now_ms >= entry->expires_ms;
}

static uint64_t
kv_expiry(uint64_t now_ms, uint32_t ttl_s)
{
    return ttl_s == 0 ? 0 : now_ms + (uint64_t)ttl_s * 1000u;
}

/* The set of a hash and, locked, its stripe. Pair with kv_set_unlock. */
static struct kv_entry *
kv_set_lock(struct kv_embedded *store, uint32_t hash)
{
    uint32_t set = hash % store->set_count;
    int rc = pthread_mutex_lock(&store->locks[set % KV_LOCK_STRIPES]);
    ASSERT(rc == 0); /* a default mutex locked once per call: cannot fail */
    return &store->entries[(size_t)set * KV_EMBEDDED_WAYS];
}

static void
kv_set_unlock(struct kv_embedded *store, uint32_t hash)
{
    uint32_t set = hash % store->set_count;
    int rc = pthread_mutex_unlock(&store->locks[set % KV_LOCK_STRIPES]);
    ASSERT(rc == 0);
}

/* The live entry holding key in set, or NULL. An expired one found on
 * the way is freed. Under the set's lock. */
static struct kv_entry *
kv_set_find(struct kv_entry *set, uint32_t hash, const void *key, size_t key_len,
            uint64_t now_ms)
{
    for (uint32_t i = 0; i < KV_EMBEDDED_WAYS; i++) {
        struct kv_entry *entry = &set[i];
        if (entry->written == 0 || entry->hash != hash || entry->key_len != key_len ||
            memcmp(entry->key, key, key_len) != 0) {
            continue;
        }
        if (kv_entry_is_expired(entry, now_ms)) {
            entry->written = 0;
            return NULL;
        }
        return entry;
    }
    return NULL;
}

/* Where a new key goes in set: a free entry, else an expired one, else the
 * least recently written. Under the set's lock. */
static struct kv_entry *
kv_set_victim(struct kv_entry *set, uint64_t now_ms)
{
    struct kv_entry *oldest = &set[0];
    for (uint32_t i = 0; i < KV_EMBEDDED_WAYS; i++) {
        struct kv_entry *entry = &set[i];
        if (entry->written == 0) {
            return entry;
        }
    }
    for (uint32_t i = 0; i < KV_EMBEDDED_WAYS; i++) {
        struct kv_entry *entry = &set[i];
        if (kv_entry_is_expired(entry, now_ms)) {
            return entry;
        }
        if (entry->written < oldest->written) {
            oldest = entry;
        }
    }
    return oldest;
}

static void
kv_entry_write(struct kv_embedded *store, struct kv_entry *entry, uint32_t hash,
               const void *key, size_t key_len, const void *value, size_t value_len,
               uint64_t expires_ms)
{
    ASSERT(key_len <= KV_KEY_BYTES_MAX);
    ASSERT(value_len <= KV_VALUE_BYTES_MAX);
    entry->hash = hash;
    entry->key_len = (uint8_t)key_len;
    memcpy(entry->key, key, key_len);
    entry->value_len = (uint8_t)value_len;
    if (value_len > 0) {
        memcpy(entry->value, value, value_len);
    }
    entry->expires_ms = expires_ms;
    entry->written = __atomic_add_fetch(&store->write_sequence, 1, __ATOMIC_RELAXED);
}

static int
kv_embedded_set(struct kv *kv, const void *key, size_t key_len, const void *value,
                size_t value_len, uint32_t ttl_s)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    uint32_t hash = kv_embedded_hash(store, key, key_len);
    struct kv_entry *set = kv_set_lock(store, hash);
    struct kv_entry *entry = kv_set_find(set, hash, key, key_len, now_ms);
    if (entry == NULL) {
        entry = kv_set_victim(set, now_ms);
    }
    kv_entry_write(store, entry, hash, key, key_len, value, value_len,
                   kv_expiry(now_ms, ttl_s));
    kv_set_unlock(store, hash);
    return 0;
}

static int
kv_embedded_get(struct kv *kv, const void *key, size_t key_len, void *value_out,
                size_t value_bytes, size_t *value_len_out)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    uint32_t hash = kv_embedded_hash(store, key, key_len);
    struct kv_entry *set = kv_set_lock(store, hash);
    struct kv_entry *entry = kv_set_find(set, hash, key, key_len, now_ms);
    int rc = 0;
    if (entry == NULL) {
        rc = -ENOENT;
    } else if (entry->value_len > value_bytes) {
        rc = -ENOSPC;
    } else {
        if (entry->value_len > 0) {
            memcpy(value_out, entry->value, entry->value_len);
        }
        *value_len_out = entry->value_len;
    }
    kv_set_unlock(store, hash);
    return rc;
}

static int
kv_embedded_del(struct kv *kv, const void *key, size_t key_len)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    uint32_t hash = kv_embedded_hash(store, key, key_len);
    struct kv_entry *set = kv_set_lock(store, hash);
    struct kv_entry *entry = kv_set_find(set, hash, key, key_len, now_ms);
    if (entry != NULL) {
        entry->written = 0;
    }
    kv_set_unlock(store, hash);
    return entry != NULL ? 0 : -ENOENT;
}

int
kv_counter_parse(const void *bytes, size_t len, uint64_t *value_out)
{
    const uint8_t *text = bytes;
    if (len == 0 || len > KV_COUNTER_DIGITS_MAX) {
        return -EINVAL;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -EINVAL;
        }
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return -EINVAL;
        }
        value = value * 10 + digit;
    }
    *value_out = value;
    return 0;
}

static size_t
kv_counter_format(uint64_t value, uint8_t *out)
{
    uint8_t reversed[KV_COUNTER_DIGITS_MAX];
    size_t n = 0;
    do {
        reversed[n++] = (uint8_t)('0' + value % 10);
        value /= 10;
    } while (value > 0 && n < KV_COUNTER_DIGITS_MAX);
    for (size_t i = 0; i < n; i++) {
        out[i] = reversed[n - 1 - i];
    }
    return n;
}

static int
kv_embedded_incr(struct kv *kv, const void *key, size_t key_len, uint32_t ttl_s,
                 uint64_t *value_out)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    uint32_t hash = kv_embedded_hash(store, key, key_len);
    struct kv_entry *set = kv_set_lock(store, hash);
    struct kv_entry *entry = kv_set_find(set, hash, key, key_len, now_ms);
    uint64_t value = 0;
    uint64_t expires_ms = kv_expiry(now_ms, ttl_s);
    int rc = 0;
    if (entry != NULL) {
        rc = kv_counter_parse(entry->value, entry->value_len, &value);
        if (rc == 0 && value == UINT64_MAX) {
            rc = -ERANGE;
        }
        expires_ms = entry->expires_ms; /* a fixed window: the first write set it */
    } else {
        entry = kv_set_victim(set, now_ms);
    }
    if (rc == 0) {
        value++;
        uint8_t text[KV_COUNTER_DIGITS_MAX];
        size_t len = kv_counter_format(value, text);
        kv_entry_write(store, entry, hash, key, key_len, text, len, expires_ms);
        *value_out = value;
    }
    kv_set_unlock(store, hash);
    return rc;
}

static size_t
kv_embedded_count(struct kv *kv)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    size_t count = 0;
    for (uint32_t set = 0; set < store->set_count; set++) {
        /* Lock the stripe of this set: its hash maps to it by construction. */
        int rc = pthread_mutex_lock(&store->locks[set % KV_LOCK_STRIPES]);
        ASSERT(rc == 0);
        const struct kv_entry *entries = &store->entries[(size_t)set * KV_EMBEDDED_WAYS];
        for (uint32_t i = 0; i < KV_EMBEDDED_WAYS; i++) {
            if (entries[i].written != 0 && !kv_entry_is_expired(&entries[i], now_ms)) {
                count++;
            }
        }
        rc = pthread_mutex_unlock(&store->locks[set % KV_LOCK_STRIPES]);
        ASSERT(rc == 0);
    }
    return count;
}

static void
kv_embedded_destroy(struct kv *kv)
{
    struct kv_embedded *store = (struct kv_embedded *)kv;
    for (uint32_t i = 0; i < KV_LOCK_STRIPES; i++) {
        int rc = pthread_mutex_destroy(&store->locks[i]);
        ASSERT(rc == 0); /* a lock still held here is a caller's bug */
    }
    free(store->entries);
    free(store);
}

static const struct kv_ops kv_embedded_ops = {
    .name = "embedded",
    .set = kv_embedded_set,
    .get = kv_embedded_get,
    .del = kv_embedded_del,
    .incr = kv_embedded_incr,
    .count = kv_embedded_count,
    .destroy = kv_embedded_destroy,
};

/* ---- walking and refilling (see kv.h; used by core/kv_snapshot) ---------- */

int
kv_embedded_foreach(struct kv *kv, kv_embedded_item_fn fn, void *arg)
{
    ASSERT(kv != NULL);
    ASSERT(fn != NULL);
    if (kv->ops != &kv_embedded_ops) {
        return -EOPNOTSUPP;
    }
    struct kv_embedded *store = (struct kv_embedded *)kv;
    for (uint32_t set = 0; set < store->set_count; set++) {
        /* One set copied under its stripe's lock (its hash maps to it by
         * construction, as in kv_embedded_count), fn called without it. */
        struct kv_entry copy[KV_EMBEDDED_WAYS];
        uint32_t copy_count = 0;
        uint64_t now_ms = store->clock(store->clock_arg);
        int rc = pthread_mutex_lock(&store->locks[set % KV_LOCK_STRIPES]);
        ASSERT(rc == 0);
        const struct kv_entry *entries = &store->entries[(size_t)set * KV_EMBEDDED_WAYS];
        for (uint32_t i = 0; i < KV_EMBEDDED_WAYS; i++) {
            if (entries[i].written != 0 && !kv_entry_is_expired(&entries[i], now_ms)) {
                copy[copy_count++] = entries[i];
            }
        }
        rc = pthread_mutex_unlock(&store->locks[set % KV_LOCK_STRIPES]);
        ASSERT(rc == 0);
        for (uint32_t i = 0; i < copy_count; i++) {
            const struct kv_entry *entry = &copy[i];
            ASSERT(entry->key_len > 0 && entry->key_len <= KV_KEY_BYTES_MAX);
            ASSERT(entry->value_len <= KV_VALUE_BYTES_MAX);
            struct kv_embedded_item item = {
                .key = entry->key,
                .key_len = entry->key_len,
                .value = entry->value,
                .value_len = entry->value_len,
                .ttl_ms = entry->expires_ms == 0 ? 0 : entry->expires_ms - now_ms,
            };
            rc = fn(&item, arg);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int
kv_embedded_restore(struct kv *kv, const void *key, size_t key_len, const void *value,
                    size_t value_len, uint64_t ttl_ms)
{
    ASSERT(kv != NULL);
    if (kv->ops != &kv_embedded_ops) {
        return -EOPNOTSUPP;
    }
    /* No longer than kv_set could have asked for (ttl_s is a u32). */
    if (!kv_key_ok(key, key_len) || value_len > KV_VALUE_BYTES_MAX ||
        (value == NULL && value_len > 0) || ttl_ms > (uint64_t)UINT32_MAX * 1000u) {
        return -EINVAL;
    }
    struct kv_embedded *store = (struct kv_embedded *)kv;
    uint64_t now_ms = store->clock(store->clock_arg);
    uint32_t hash = kv_embedded_hash(store, key, key_len);
    struct kv_entry *set = kv_set_lock(store, hash);
    int rc = 0;
    if (kv_set_find(set, hash, key, key_len, now_ms) != NULL) {
        rc = -EEXIST;
    } else {
        struct kv_entry *entry = kv_set_victim(set, now_ms);
        if (entry->written != 0 && !kv_entry_is_expired(entry, now_ms)) {
            rc = -ENOSPC; /* the victim is live: refilling never evicts */
        } else {
            kv_entry_write(store, entry, hash, key, key_len, value, value_len,
                           ttl_ms == 0 ? 0 : now_ms + ttl_ms);
        }
    }
    kv_set_unlock(store, hash);
    return rc;
}
