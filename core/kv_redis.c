/*
 * core/kv_redis.c - the Redis backend of the key-value store (see
 * kv_redis.h for what callers get).
 *
 * Owns one hiredis connection and the thread that drives it. Callers fill
 * a request slot from a fixed pool (queue_max slots) under a short mutex
 * and queue it; the I/O thread takes up to KV_REDIS_BATCH_MAX queued
 * slots, pipelines their commands, reads the replies and completes the
 * slots: a waiting caller is woken (it waits on its slot's condition
 * variable until its own deadline, then abandons the slot, which the I/O
 * thread frees when the reply comes or the connection dies); a slot
 * nobody waits for is freed at once. Replies also refresh the local cache
 * that non-waiting callers (reactors) read: two embedded stores
 * (kv_embedded_create), one of values, each living min(cache_s, the key's
 * remaining Redis TTL), and one of keys known absent, each living
 * min(cache_s, KV_REDIS_ABSENT_S_MAX).
 *
 * The I/O thread uses hiredis's blocking calls with socket timeouts
 * (connect_timeout_ms to connect and for AUTH/SELECT/PING, io_timeout_ms
 * for replies): only it ever blocks, and only that long. A broken or silent
 * connection fails every request in it and in the queue with -EAGAIN and
 * is replaced after a backoff of KV_REDIS_BACKOFF_MIN_MS doubling to
 * KV_REDIS_BACKOFF_MAX_MS; while there is no connection callers are refused
 * at once with -EAGAIN, so nothing piles up. An idle connection is looked
 * at every KV_REDIS_IDLE_CHECK_MS, so a Redis restarted while we had
 * nothing to ask is noticed then, not by the next request.
 *
 * Counters (kv_incr): a Lua script (EVAL) reads the key, refuses a value
 * that is not decimal digits, INCRs it, and sets the expiry only when the
 * key was missing: the fixed window of the embedded backend, atomic in
 * Redis. It returns the new value and the remaining PTTL for the cache.
 *
 * Any thread calls; one I/O thread per store.
 * Limits: KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX, KV_REDIS_* (kv_redis.h),
 * queue_max requests in flight, KV_REDIS_SCAN_CALLS_MAX SCANs per count.
 */
#define _GNU_SOURCE
#include "core/kv_redis.h"

#include <assert.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/log.h"

#define KV_REDIS_BATCH_MAX 64u
#define KV_REDIS_BACKOFF_MIN_MS 50u
#define KV_REDIS_BACKOFF_MAX_MS 2000u
#define KV_REDIS_IO_TIMEOUT_MS_MIN 1000u
#define KV_REDIS_IDLE_CHECK_MS 1000u
#define KV_REDIS_SCAN_CALLS_MAX 100000u
#define KV_REDIS_SCAN_COUNT "1000"
#define KV_REDIS_PREFIX_DEFAULT "toaster:"
#define KV_REDIS_FULL_KEY_BYTES_MAX (KV_REDIS_PREFIX_BYTES_MAX + KV_KEY_BYTES_MAX)
#define KV_REDIS_NUMBER_BYTES 24
#define KV_REDIS_SLOT_NONE UINT32_MAX

static_assert(KV_REDIS_FULL_KEY_BYTES_MAX <= UINT8_MAX, "a full key's length fits a byte");
static_assert(KV_VALUE_BYTES_MAX <= UINT8_MAX, "a value's length fits a byte");
static_assert(KV_REDIS_QUEUE_CEILING < KV_REDIS_SLOT_NONE, "slot numbers fit u32");

/* The counter script: see the opening comment. KEYS[1] the key, ARGV[1]
 * the window in milliseconds (0: none). The new value goes back as the
 * string GET reads, not as INCR's integer: Lua numbers are doubles, exact
 * only up to 2^53. */
static const char kv_redis_incr_script[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and not string.match(v, '^%d+$') then\n"
    "  return redis.error_reply('ERR value is not an integer or out of range')\n"
    "end\n"
    "redis.call('INCR', KEYS[1])\n"
    "if not v and tonumber(ARGV[1]) > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "end\n"
    "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}\n";

enum kv_redis_op {
    KV_REDIS_OP_SET,
    KV_REDIS_OP_GET,
    KV_REDIS_OP_DEL,
    KV_REDIS_OP_INCR,
    KV_REDIS_OP_COUNT,
};

enum kv_redis_slot_state {
    KV_REDIS_SLOT_FREE,
    KV_REDIS_SLOT_QUEUED,
    KV_REDIS_SLOT_SENT,
    KV_REDIS_SLOT_DONE,
};

/* One request. The caller fills it and queues it under the lock; the I/O
 * thread alone writes result, number and value (for a get) while it is
 * SENT, and publishes them by setting DONE under the lock. */
struct kv_redis_slot {
    pthread_cond_t done_cond;
    uint32_t next_free;
    uint8_t state;   /* enum kv_redis_slot_state */
    uint8_t op;      /* enum kv_redis_op */
    bool has_waiter; /* false: the I/O thread frees it when done */
    uint8_t key_len; /* prefix included */
    uint8_t value_len;
    uint32_t ttl_s;
    int result;
    uint64_t number; /* incr: the new value; count: the count */
    uint8_t key[KV_REDIS_FULL_KEY_BYTES_MAX];
    uint8_t value[KV_VALUE_BYTES_MAX];
};

struct kv_redis_counters {
    uint64_t requests;
    uint64_t commands;
    uint64_t errors;
    uint64_t timeouts;
    uint64_t refused;
    uint64_t connects;
    uint64_t connect_failures;
    uint64_t disconnects;
    uint64_t cache_hits;
    uint64_t cache_misses;
};

struct kv_redis {
    struct kv base; /* first: a struct kv * is a struct kv_redis * */
    struct kv_redis_address address;
    char password[KV_REDIS_PASSWORD_BYTES_MAX];
    uint32_t db;
    char prefix[KV_REDIS_PREFIX_BYTES_MAX + 1];
    size_t prefix_len;
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms;
    uint32_t io_timeout_ms;
    uint32_t cache_s;
    struct kv *cache;  /* values; NULL when cache_s is 0 */
    struct kv *absent; /* keys known absent; NULL likewise */

    pthread_mutex_t lock; /* guards everything below but the counters */
    pthread_cond_t work_cond;
    struct kv_redis_slot *slots;
    uint32_t slot_count;
    uint32_t free_head;
    uint32_t *queue; /* ring of slot numbers, slot_count long */
    uint32_t queue_head;
    uint32_t queue_len;
    bool is_connected;
    bool is_stopping;
    bool is_count_queued; /* a non-waiting count's refresh */
    uint64_t last_count;
    pthread_t thread;

    struct kv_redis_counters counters; /* atomic, relaxed */
};

static const struct kv_ops kv_redis_ops;

static void *kv_redis_main(void *arg);

/* ---- pure helpers ------------------------------------------------------- */

void
kv_redis_config_defaults(struct kv_redis_config *config)
{
    memset(config, 0, sizeof(*config));
    config->prefix = KV_REDIS_PREFIX_DEFAULT;
    config->timeout_ms = KV_REDIS_TIMEOUT_MS_DEFAULT;
    config->connect_timeout_ms = KV_REDIS_CONNECT_TIMEOUT_MS_DEFAULT;
    config->queue_max = KV_REDIS_QUEUE_DEFAULT;
    config->cache_entries = KV_REDIS_CACHE_ENTRIES_DEFAULT;
    config->cache_s = KV_REDIS_CACHE_S_DEFAULT;
}

/* Decimal 1..65535, nothing else. */
static int
kv_redis_port_parse(const char *text, uint16_t *port_out)
{
    size_t len = strlen(text);
    if (len == 0 || len > 5) {
        return -EINVAL;
    }
    uint32_t port = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -EINVAL;
        }
        port = port * 10 + (uint32_t)(text[i] - '0');
    }
    if (port == 0 || port > 65535) {
        return -EINVAL;
    }
    *port_out = (uint16_t)port;
    return 0;
}

int
kv_redis_address_parse(const char *text, struct kv_redis_address *address_out)
{
    struct kv_redis_address address;
    memset(&address, 0, sizeof(address));
    if (text == NULL || text[0] == '\0') {
        return -EINVAL;
    }
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        size_t len = strlen(path);
        if (path[0] != '/' || len >= sizeof(address.path)) {
            return -EINVAL;
        }
        memcpy(address.path, path, len + 1);
        *address_out = address;
        return 0;
    }
    const char *host = text;
    size_t host_len = 0;
    const char *port = NULL;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return -EINVAL;
        }
        host = text + 1;
        host_len = (size_t)(close - host);
        port = close + 2;
    } else {
        const char *colon = strchr(text, ':');
        if (colon == NULL || strchr(colon + 1, ':') != NULL) {
            return -EINVAL; /* no port, or a bare IPv6 address: needs [] */
        }
        host_len = (size_t)(colon - text);
        port = colon + 1;
    }
    if (host_len == 0 || host_len >= sizeof(address.host) || memchr(host, ' ', host_len) != NULL) {
        return -EINVAL;
    }
    int rc = kv_redis_port_parse(port, &address.port);
    if (rc != 0) {
        return rc;
    }
    memcpy(address.host, host, host_len);
    address.host[host_len] = '\0';
    *address_out = address;
    return 0;
}

int
kv_redis_error_code(const char *text, size_t text_len)
{
    static const struct {
        const char *needle;
        int code;
    } map[] = {
        {"WRONGTYPE", -EINVAL},
        {"not an integer", -EINVAL},
        {"would overflow", -ERANGE},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (text != NULL && memmem(text, text_len, map[i].needle, strlen(map[i].needle)) != NULL) {
            return map[i].code;
        }
    }
    return -EAGAIN;
}

int
kv_redis_match_pattern(const char *prefix, size_t prefix_len, char *pattern_out,
                       size_t pattern_bytes)
{
    size_t n = 0;
    for (size_t i = 0; i < prefix_len; i++) {
        bool is_glob = strchr("*?[]\\", prefix[i]) != NULL && prefix[i] != '\0';
        if (n + (is_glob ? 2u : 1u) > pattern_bytes) {
            return -ENOSPC;
        }
        if (is_glob) {
            pattern_out[n++] = '\\';
        }
        pattern_out[n++] = prefix[i];
    }
    if (n + 2 > pattern_bytes) { /* "*" and a terminating NUL */
        return -ENOSPC;
    }
    pattern_out[n++] = '*';
    pattern_out[n] = '\0';
    return (int)n;
}

static void
kv_redis_count_add(uint64_t *counter)
{
    (void)__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static struct timespec
kv_redis_deadline(uint32_t timeout_ms)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail with a valid pointer */
    uint64_t ns = (uint64_t)now.tv_nsec + (uint64_t)timeout_ms * 1000000u;
    now.tv_sec += (time_t)(ns / 1000000000u);
    now.tv_nsec = (long)(ns % 1000000000u);
    return now;
}

static struct timeval
kv_redis_timeval(uint32_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000u),
                         .tv_usec = (suseconds_t)(ms % 1000u) * 1000};
    return tv;
}

/* ---- the cache ---------------------------------------------------------- */

/* How long the cache may believe a value whose key has pttl_ms left in
 * Redis (-1: no expiry). 0: do not cache. */
static uint32_t
kv_redis_cache_ttl_s(const struct kv_redis *store, int64_t pttl_ms)
{
    if (pttl_ms == -1) {
        return store->cache_s;
    }
    if (pttl_ms < 1000) {
        return 0; /* under a second left, or gone: the cache counts whole seconds */
    }
    uint64_t left_s = (uint64_t)pttl_ms / 1000u;
    return left_s < store->cache_s ? (uint32_t)left_s : store->cache_s;
}

static void
kv_redis_cache_forget(struct kv_redis *store, const void *key, size_t key_len)
{
    if (store->cache == NULL) {
        return;
    }
    /* -ENOENT is the usual answer; nothing else can come from these stores. */
    (void)kv_delete(store->cache, key, key_len);
    (void)kv_delete(store->absent, key, key_len);
}

static void
kv_redis_cache_put(struct kv_redis *store, const void *key, size_t key_len, const void *value,
                   size_t value_len, uint32_t ttl_s)
{
    if (store->cache == NULL) {
        return;
    }
    if (ttl_s == 0) {
        kv_redis_cache_forget(store, key, key_len);
        return;
    }
    (void)kv_delete(store->absent, key, key_len); /* -ENOENT is fine */
    int rc = kv_set(store->cache, key, key_len, value, value_len, ttl_s);
    ASSERT(rc == 0); /* bounds were checked by the caller; embedded sets succeed */
}

static void
kv_redis_cache_put_absent(struct kv_redis *store, const void *key, size_t key_len)
{
    if (store->cache == NULL) {
        return;
    }
    (void)kv_delete(store->cache, key, key_len); /* -ENOENT is fine */
    uint32_t ttl_s =
        store->cache_s < KV_REDIS_ABSENT_S_MAX ? store->cache_s : KV_REDIS_ABSENT_S_MAX;
    int rc = kv_set(store->absent, key, key_len, "", 0, ttl_s);
    ASSERT(rc == 0);
}

/* ---- create / destroy --------------------------------------------------- */

static void
kv_redis_free(struct kv_redis *store)
{
    if (store->slots != NULL) {
        for (uint32_t i = 0; i < store->slot_count; i++) {
            (void)pthread_cond_destroy(&store->slots[i].done_cond); /* nobody waits now */
        }
    }
    free(store->slots);
    free(store->queue);
    kv_destroy(&store->cache);
    kv_destroy(&store->absent);
    free(store);
}

static int
kv_redis_config_check(const struct kv_redis_config *config, const char *prefix)
{
    if (config->timeout_ms == 0 || config->timeout_ms > KV_REDIS_TIMEOUT_MS_CEILING ||
        config->connect_timeout_ms == 0 ||
        config->connect_timeout_ms > KV_REDIS_TIMEOUT_MS_CEILING || config->queue_max == 0 ||
        config->queue_max > KV_REDIS_QUEUE_CEILING || config->db > KV_REDIS_DB_CEILING ||
        config->cache_s > KV_REDIS_CACHE_S_CEILING ||
        (config->cache_s > 0 &&
         (config->cache_entries == 0 || config->cache_entries > KV_EMBEDDED_ENTRIES_CEILING))) {
        return -EINVAL;
    }
    if (strlen(prefix) > KV_REDIS_PREFIX_BYTES_MAX) {
        return -EINVAL;
    }
    if (config->password != NULL && strlen(config->password) >= KV_REDIS_PASSWORD_BYTES_MAX) {
        return -EINVAL;
    }
    return 0;
}

int
kv_redis_create(const struct kv_redis_config *config, struct kv **kv_out)
{
    ASSERT(config != NULL);
    ASSERT(kv_out != NULL);
    const char *prefix = config->prefix != NULL ? config->prefix : KV_REDIS_PREFIX_DEFAULT;
    int rc = kv_redis_config_check(config, prefix);
    if (rc != 0) {
        return rc;
    }
    struct kv_redis *store = calloc(1, sizeof(*store));
    if (store == NULL) {
        return -ENOMEM;
    }
    rc = kv_redis_address_parse(config->address, &store->address);
    if (rc != 0) {
        free(store);
        return rc;
    }
    if (config->password != NULL) {
        (void)snprintf(store->password, sizeof(store->password), "%s", config->password);
    }
    store->db = config->db;
    store->prefix_len = strlen(prefix);
    memcpy(store->prefix, prefix, store->prefix_len + 1);
    store->timeout_ms = config->timeout_ms;
    store->connect_timeout_ms = config->connect_timeout_ms;
    /* A reply may come after a waiting caller gave up (it is only late);
     * the connection is declared dead only when one takes this long. */
    store->io_timeout_ms = config->timeout_ms * 4u;
    if (store->io_timeout_ms < KV_REDIS_IO_TIMEOUT_MS_MIN) {
        store->io_timeout_ms = KV_REDIS_IO_TIMEOUT_MS_MIN;
    }
    store->cache_s = config->cache_s;
    store->slot_count = config->queue_max;
    store->free_head = KV_REDIS_SLOT_NONE;
    store->base.ops = &kv_redis_ops;

    if (store->cache_s > 0) {
        rc = kv_embedded_create(config->cache_entries, NULL, NULL, &store->cache);
        if (rc == 0) {
            rc = kv_embedded_create(config->cache_entries, NULL, NULL, &store->absent);
        }
        if (rc != 0) {
            kv_redis_free(store);
            return rc;
        }
    }
    store->slots = calloc(store->slot_count, sizeof(*store->slots));
    store->queue = calloc(store->slot_count, sizeof(*store->queue));
    if (store->slots == NULL || store->queue == NULL) {
        kv_redis_free(store);
        return -ENOMEM;
    }
    pthread_condattr_t attr;
    rc = pthread_condattr_init(&attr);
    if (rc != 0) {
        store->slot_count = 0; /* no condition variable initialized yet */
        kv_redis_free(store);
        return -rc;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    ASSERT(rc == 0); /* CLOCK_MONOTONIC is always supported */
    uint32_t initialized = 0;
    for (; initialized < store->slot_count && rc == 0; initialized++) {
        rc = pthread_cond_init(&store->slots[initialized].done_cond, &attr);
    }
    if (rc == 0) {
        rc = pthread_cond_init(&store->work_cond, &attr);
        if (rc == 0) {
            rc = pthread_mutex_init(&store->lock, NULL);
            if (rc != 0) {
                (void)pthread_cond_destroy(&store->work_cond);
            }
        }
    } else {
        initialized--; /* the last one failed */
    }
    (void)pthread_condattr_destroy(&attr); /* cannot fail for an initialized attr */
    if (rc != 0) {
        store->slot_count = initialized;
        kv_redis_free(store);
        return -rc;
    }
    for (uint32_t i = store->slot_count; i > 0; i--) {
        store->slots[i - 1].next_free = store->free_head;
        store->free_head = i - 1;
    }
    rc = pthread_create(&store->thread, NULL, kv_redis_main, store);
    if (rc != 0) {
        (void)pthread_mutex_destroy(&store->lock);
        (void)pthread_cond_destroy(&store->work_cond);
        kv_redis_free(store);
        return -rc;
    }
    *kv_out = &store->base;
    return 0;
}

static void
kv_redis_destroy(struct kv *kv)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    int rc = pthread_mutex_lock(&store->lock);
    ASSERT(rc == 0);
    store->is_stopping = true;
    rc = pthread_cond_signal(&store->work_cond);
    ASSERT(rc == 0);
    rc = pthread_mutex_unlock(&store->lock);
    ASSERT(rc == 0);
    /* The I/O thread sends what is queued, then ends: bounded by the queue
     * and io_timeout_ms per batch, or by connect_timeout_ms if it was
     * connecting. */
    rc = pthread_join(store->thread, NULL);
    ASSERT(rc == 0);
    rc = pthread_mutex_destroy(&store->lock);
    ASSERT(rc == 0);
    rc = pthread_cond_destroy(&store->work_cond);
    ASSERT(rc == 0);
    kv_redis_free(store);
}

int
kv_redis_stats(struct kv *kv, struct kv_redis_stats *stats_out)
{
    ASSERT(kv != NULL);
    ASSERT(stats_out != NULL);
    if (kv->ops != &kv_redis_ops) {
        return -EINVAL;
    }
    struct kv_redis *store = (struct kv_redis *)kv;
    const struct kv_redis_counters *c = &store->counters;
    stats_out->requests = __atomic_load_n(&c->requests, __ATOMIC_RELAXED);
    stats_out->commands = __atomic_load_n(&c->commands, __ATOMIC_RELAXED);
    stats_out->errors = __atomic_load_n(&c->errors, __ATOMIC_RELAXED);
    stats_out->timeouts = __atomic_load_n(&c->timeouts, __ATOMIC_RELAXED);
    stats_out->refused = __atomic_load_n(&c->refused, __ATOMIC_RELAXED);
    stats_out->connects = __atomic_load_n(&c->connects, __ATOMIC_RELAXED);
    stats_out->connect_failures = __atomic_load_n(&c->connect_failures, __ATOMIC_RELAXED);
    stats_out->disconnects = __atomic_load_n(&c->disconnects, __ATOMIC_RELAXED);
    stats_out->cache_hits = __atomic_load_n(&c->cache_hits, __ATOMIC_RELAXED);
    stats_out->cache_misses = __atomic_load_n(&c->cache_misses, __ATOMIC_RELAXED);
    int rc = pthread_mutex_lock(&store->lock);
    ASSERT(rc == 0);
    stats_out->is_connected = store->is_connected ? 1 : 0;
    rc = pthread_mutex_unlock(&store->lock);
    ASSERT(rc == 0);
    return 0;
}

/* ---- the callers' side -------------------------------------------------- */

static void
kv_redis_lock(struct kv_redis *store)
{
    int rc = pthread_mutex_lock(&store->lock);
    ASSERT(rc == 0);
}

static void
kv_redis_unlock(struct kv_redis *store)
{
    int rc = pthread_mutex_unlock(&store->lock);
    ASSERT(rc == 0);
}

/* Give a slot back. Under the lock. */
static void
kv_redis_slot_release(struct kv_redis *store, struct kv_redis_slot *slot)
{
    slot->state = KV_REDIS_SLOT_FREE;
    slot->next_free = store->free_head;
    store->free_head = (uint32_t)(slot - store->slots);
}

/* A free slot filled with op and the prefixed key, or NULL (-EAGAIN: no
 * connection, or every slot in use). Under the lock. */
static struct kv_redis_slot *
kv_redis_slot_take(struct kv_redis *store, enum kv_redis_op op, const void *key, size_t key_len)
{
    if (!store->is_connected || store->is_stopping || store->free_head == KV_REDIS_SLOT_NONE) {
        return NULL;
    }
    struct kv_redis_slot *slot = &store->slots[store->free_head];
    ASSERT(slot->state == KV_REDIS_SLOT_FREE);
    store->free_head = slot->next_free;
    slot->op = (uint8_t)op;
    slot->has_waiter = false;
    slot->ttl_s = 0;
    slot->value_len = 0;
    slot->result = -EAGAIN;
    slot->number = 0;
    ASSERT(store->prefix_len + key_len <= sizeof(slot->key));
    memcpy(slot->key, store->prefix, store->prefix_len);
    if (key_len > 0) {
        memcpy(slot->key + store->prefix_len, key, key_len);
    }
    slot->key_len = (uint8_t)(store->prefix_len + key_len);
    return slot;
}

/* Queue a filled slot and wake the I/O thread. Under the lock. */
static void
kv_redis_slot_queue(struct kv_redis *store, struct kv_redis_slot *slot, bool has_waiter)
{
    ASSERT(store->queue_len < store->slot_count);
    slot->has_waiter = has_waiter;
    slot->state = KV_REDIS_SLOT_QUEUED;
    store->queue[(store->queue_head + store->queue_len) % store->slot_count] =
        (uint32_t)(slot - store->slots);
    store->queue_len++;
    kv_redis_count_add(&store->counters.requests);
    int rc = pthread_cond_signal(&store->work_cond);
    ASSERT(rc == 0);
}

/* Wait for a queued slot up to timeout_ms. Returns true with the slot DONE
 * (the caller reads it, then releases it), or false after abandoning it to
 * the I/O thread. Under the lock. */
static bool
kv_redis_slot_wait(struct kv_redis *store, struct kv_redis_slot *slot)
{
    struct timespec deadline = kv_redis_deadline(store->timeout_ms);
    while (slot->state != KV_REDIS_SLOT_DONE) {
        int rc = pthread_cond_timedwait(&slot->done_cond, &store->lock, &deadline);
        if (rc == ETIMEDOUT) {
            break;
        }
        ASSERT(rc == 0);
    }
    if (slot->state == KV_REDIS_SLOT_DONE) {
        return true;
    }
    slot->has_waiter = false;
    kv_redis_count_add(&store->counters.timeouts);
    return false;
}

/* Queue a request nobody waits for. Returns 0, or -EAGAIN (refused). */
static int
kv_redis_send(struct kv_redis *store, enum kv_redis_op op, const void *key, size_t key_len,
              const void *value, size_t value_len, uint32_t ttl_s)
{
    kv_redis_lock(store);
    struct kv_redis_slot *slot = kv_redis_slot_take(store, op, key, key_len);
    if (slot == NULL) {
        kv_redis_unlock(store);
        kv_redis_count_add(&store->counters.refused);
        return -EAGAIN;
    }
    slot->ttl_s = ttl_s;
    if (value_len > 0) {
        memcpy(slot->value, value, value_len);
    }
    slot->value_len = (uint8_t)value_len;
    kv_redis_slot_queue(store, slot, false);
    kv_redis_unlock(store);
    return 0;
}

/* Send a request and wait for its answer. Returns the request's result, or
 * -EAGAIN (refused, or no answer in timeout_ms). On 0, *number_out gets
 * the slot's number and, for a get, value_out (value_bytes long) the value. */
static int
kv_redis_call(struct kv_redis *store, enum kv_redis_op op, const void *key, size_t key_len,
              const void *value, size_t value_len, uint32_t ttl_s, void *value_out,
              size_t value_bytes, size_t *value_len_out, uint64_t *number_out)
{
    kv_redis_lock(store);
    struct kv_redis_slot *slot = kv_redis_slot_take(store, op, key, key_len);
    if (slot == NULL) {
        kv_redis_unlock(store);
        kv_redis_count_add(&store->counters.refused);
        return -EAGAIN;
    }
    slot->ttl_s = ttl_s;
    if (value_len > 0) {
        memcpy(slot->value, value, value_len);
    }
    slot->value_len = (uint8_t)value_len;
    kv_redis_slot_queue(store, slot, true);
    if (!kv_redis_slot_wait(store, slot)) {
        kv_redis_unlock(store);
        return -EAGAIN;
    }
    int rc = slot->result;
    if (rc == 0 && value_len_out != NULL) {
        if (slot->value_len > value_bytes) {
            rc = -ENOSPC;
        } else {
            if (slot->value_len > 0) {
                memcpy(value_out, slot->value, slot->value_len);
            }
            *value_len_out = slot->value_len;
        }
    }
    if (rc == 0 && number_out != NULL) {
        *number_out = slot->number;
    }
    kv_redis_slot_release(store, slot);
    kv_redis_unlock(store);
    return rc;
}

static int
kv_redis_set(struct kv *kv, const void *key, size_t key_len, const void *value, size_t value_len,
             uint32_t ttl_s)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    ASSERT(key_len <= KV_KEY_BYTES_MAX); /* kv.c checked */
    if (kv_thread_can_wait()) {
        return kv_redis_call(store, KV_REDIS_OP_SET, key, key_len, value, value_len, ttl_s, NULL, 0,
                             NULL, NULL);
    }
    int rc = kv_redis_send(store, KV_REDIS_OP_SET, key, key_len, value, value_len, ttl_s);
    if (rc == 0) {
        /* Read your own writes: the reactor that set it sees it at once. */
        uint32_t cache_ttl_s = ttl_s == 0 || ttl_s > store->cache_s ? store->cache_s : ttl_s;
        kv_redis_cache_put(store, key, key_len, value, value_len, cache_ttl_s);
    }
    return rc;
}

static int
kv_redis_get(struct kv *kv, const void *key, size_t key_len, void *value_out, size_t value_bytes,
             size_t *value_len_out)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    ASSERT(key_len <= KV_KEY_BYTES_MAX); /* kv.c checked */
    if (kv_thread_can_wait()) {
        return kv_redis_call(store, KV_REDIS_OP_GET, key, key_len, NULL, 0, 0, value_out,
                             value_bytes, value_len_out, NULL);
    }
    if (store->cache == NULL) {
        kv_redis_count_add(&store->counters.cache_misses);
        return -EAGAIN; /* no cache: a fetch would have nowhere to land */
    }
    uint8_t value[KV_VALUE_BYTES_MAX];
    size_t value_len = 0;
    int rc = kv_get(store->cache, key, key_len, value, sizeof(value), &value_len);
    if (rc == 0) {
        kv_redis_count_add(&store->counters.cache_hits);
        if (value_len > value_bytes) {
            return -ENOSPC;
        }
        if (value_len > 0) {
            memcpy(value_out, value, value_len);
        }
        *value_len_out = value_len;
        return 0;
    }
    rc = kv_get(store->absent, key, key_len, value, sizeof(value), &value_len);
    if (rc == 0) {
        kv_redis_count_add(&store->counters.cache_hits);
        return -ENOENT;
    }
    kv_redis_count_add(&store->counters.cache_misses);
    /* The fetch's reply fills the cache; refused, there is nothing to do. */
    (void)kv_redis_send(store, KV_REDIS_OP_GET, key, key_len, NULL, 0, 0);
    return -EAGAIN;
}

static int
kv_redis_del(struct kv *kv, const void *key, size_t key_len)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    ASSERT(key_len <= KV_KEY_BYTES_MAX); /* kv.c checked */
    if (kv_thread_can_wait()) {
        return kv_redis_call(store, KV_REDIS_OP_DEL, key, key_len, NULL, 0, 0, NULL, 0, NULL, NULL);
    }
    int rc = kv_redis_send(store, KV_REDIS_OP_DEL, key, key_len, NULL, 0, 0);
    if (rc == 0) {
        kv_redis_cache_put_absent(store, key, key_len);
    }
    return rc;
}

static int
kv_redis_incr(struct kv *kv, const void *key, size_t key_len, uint32_t ttl_s, uint64_t *value_out)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    ASSERT(key_len <= KV_KEY_BYTES_MAX); /* kv.c checked */
    if (kv_thread_can_wait()) {
        return kv_redis_call(store, KV_REDIS_OP_INCR, key, key_len, NULL, 0, ttl_s, NULL, 0, NULL,
                             value_out);
    }
    /* The cached counter plus our own increment: what Redis will answer
     * unless another machine counted meanwhile (then it is a lower bound,
     * corrected by the INCR's reply). Counted here before the INCR is
     * queued, so that its reply, however fast, comes after and wins. The
     * cache entry keeps its expiry. */
    int cache_rc = -ENOENT;
    if (store->cache != NULL) {
        uint8_t value[KV_VALUE_BYTES_MAX];
        size_t value_len = 0;
        cache_rc = kv_get(store->cache, key, key_len, value, sizeof(value), &value_len);
        if (cache_rc == 0) {
            /* 1 s: only if the entry expired between the two calls. */
            cache_rc = kv_incr(store->cache, key, key_len, 1, value_out);
        }
    }
    int rc = kv_redis_send(store, KV_REDIS_OP_INCR, key, key_len, NULL, 0, ttl_s);
    if (rc != 0) {
        /* Not counted in Redis: the estimate must not keep our increment. */
        kv_redis_cache_forget(store, key, key_len);
        return -EAGAIN;
    }
    if (cache_rc != 0) {
        kv_redis_count_add(&store->counters.cache_misses);
        return -EAGAIN; /* not cached (the INCR's reply will be), or not a counter */
    }
    kv_redis_count_add(&store->counters.cache_hits);
    return 0;
}

static size_t
kv_redis_count(struct kv *kv)
{
    struct kv_redis *store = (struct kv_redis *)kv;
    if (kv_thread_can_wait()) {
        uint64_t count = 0;
        int rc =
            kv_redis_call(store, KV_REDIS_OP_COUNT, NULL, 0, NULL, 0, 0, NULL, 0, NULL, &count);
        if (rc == 0) {
            return (size_t)count;
        }
    } else {
        kv_redis_lock(store);
        bool is_queued = store->is_count_queued;
        store->is_count_queued = true;
        kv_redis_unlock(store);
        if (!is_queued && kv_redis_send(store, KV_REDIS_OP_COUNT, NULL, 0, NULL, 0, 0) != 0) {
            kv_redis_lock(store);
            store->is_count_queued = false;
            kv_redis_unlock(store);
        }
    }
    kv_redis_lock(store);
    uint64_t count = store->last_count;
    kv_redis_unlock(store);
    return (size_t)count;
}

/* ---- the I/O thread ----------------------------------------------------- */

static bool
kv_redis_reply_is_status(const redisReply *reply, const char *status)
{
    return reply != NULL && reply->type == REDIS_REPLY_STATUS && reply->len == strlen(status) &&
           memcmp(reply->str, status, reply->len) == 0;
}

/* A command during the handshake; true if the reply is the status wanted. */
static bool
kv_redis_handshake(struct kv_redis *store, redisContext *ctx, int argc, const char **argv,
                   const char *status)
{
    size_t lens[3];
    ASSERT(argc <= 3);
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    kv_redis_count_add(&store->counters.commands);
    redisReply *reply = redisCommandArgv(ctx, argc, argv, lens);
    bool is_ok = kv_redis_reply_is_status(reply, status);
    if (reply != NULL && !is_ok && ctx->err == 0) {
        /* Say why once: a wrong password or database is the operator's to fix. */
        log_error("redis: %s: %.*s", argv[0],
                  reply->type == REDIS_REPLY_ERROR ? (int)reply->len : 0,
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    }
    freeReplyObject(reply); /* NULL is fine */
    return is_ok;
}

/* A connected, authenticated context that answered PING, or NULL. */
static redisContext *
kv_redis_connect(struct kv_redis *store, bool is_quiet)
{
    struct timeval tv = kv_redis_timeval(store->connect_timeout_ms);
    redisContext *ctx = store->address.path[0] != '\0'
                            ? redisConnectUnixWithTimeout(store->address.path, tv)
                            : redisConnectWithTimeout(store->address.host, store->address.port, tv);
    if (ctx == NULL) {
        return NULL; /* out of memory: try again later */
    }
    bool is_ok = ctx->err == 0 && redisSetTimeout(ctx, tv) == REDIS_OK;
    if (is_ok && store->password[0] != '\0') {
        const char *argv[] = {"AUTH", store->password};
        is_ok = kv_redis_handshake(store, ctx, 2, argv, "OK");
    }
    if (is_ok && store->db != 0) {
        char db[KV_REDIS_NUMBER_BYTES];
        (void)snprintf(db, sizeof(db), "%" PRIu32, store->db);
        const char *argv[] = {"SELECT", db};
        is_ok = kv_redis_handshake(store, ctx, 2, argv, "OK");
    }
    if (is_ok) {
        const char *argv[] = {"PING"};
        is_ok = kv_redis_handshake(store, ctx, 1, argv, "PONG");
    }
    if (is_ok) {
        is_ok = redisSetTimeout(ctx, kv_redis_timeval(store->io_timeout_ms)) == REDIS_OK;
    }
    if (is_ok && store->address.path[0] == '\0') {
        /* Keepalive only finds a dead peer sooner; without it we still time out. */
        (void)redisEnableKeepAlive(ctx);
    }
    if (!is_ok) {
        if (!is_quiet) {
            log_error("redis: cannot connect to %s%s%s%s%" PRIu16 ": %s",
                      store->address.path[0] != '\0' ? "unix:" : "", store->address.path,
                      store->address.host, store->address.path[0] != '\0' ? "" : ":",
                      store->address.port, ctx->err != 0 ? ctx->errstr : "handshake failed");
        }
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

/* Append the commands of a slot; returns how many replies it expects. */
static int
kv_redis_append(struct kv_redis *store, redisContext *ctx, const struct kv_redis_slot *slot)
{
    const char *key = (const char *)slot->key;
    size_t key_len = slot->key_len;
    char number[KV_REDIS_NUMBER_BYTES];
    int rc = REDIS_OK;
    int replies = 1;
    switch ((enum kv_redis_op)slot->op) {
    case KV_REDIS_OP_SET: {
        (void)snprintf(number, sizeof(number), "%" PRIu64, (uint64_t)slot->ttl_s * 1000u);
        const char *argv[] = {"SET", key, (const char *)slot->value, "PX", number};
        size_t lens[] = {3, key_len, slot->value_len, 2, strlen(number)};
        rc = redisAppendCommandArgv(ctx, slot->ttl_s == 0 ? 3 : 5, argv, lens);
        break;
    }
    case KV_REDIS_OP_GET: {
        const char *argv[] = {"GET", key};
        size_t lens[] = {3, key_len};
        rc = redisAppendCommandArgv(ctx, 2, argv, lens);
        if (rc == REDIS_OK) {
            argv[0] = "PTTL";
            lens[0] = 4;
            rc = redisAppendCommandArgv(ctx, 2, argv, lens);
            replies = 2;
        }
        break;
    }
    case KV_REDIS_OP_DEL: {
        const char *argv[] = {"DEL", key};
        size_t lens[] = {3, key_len};
        rc = redisAppendCommandArgv(ctx, 2, argv, lens);
        break;
    }
    case KV_REDIS_OP_INCR: {
        (void)snprintf(number, sizeof(number), "%" PRIu64, (uint64_t)slot->ttl_s * 1000u);
        const char *argv[] = {"EVAL", kv_redis_incr_script, "1", key, number};
        size_t lens[] = {4, sizeof(kv_redis_incr_script) - 1, 1, key_len, strlen(number)};
        rc = redisAppendCommandArgv(ctx, 5, argv, lens);
        break;
    }
    case KV_REDIS_OP_COUNT:
        ASSERT(!"count is not pipelined");
        break;
    }
    if (rc != REDIS_OK) {
        return -1; /* out of memory in hiredis' buffer: the connection is dropped */
    }
    for (int i = 0; i < replies; i++) {
        kv_redis_count_add(&store->counters.commands);
    }
    return replies;
}

/* An error reply's code, counted. */
static int
kv_redis_reply_error(struct kv_redis *store, const redisReply *reply)
{
    kv_redis_count_add(&store->counters.errors);
    if (reply->type != REDIS_REPLY_ERROR) {
        return -EAGAIN; /* a reply of a type the command cannot give */
    }
    return kv_redis_error_code(reply->str, reply->len);
}

/* A counter as INCR leaves it: kv_counter_parse's digits, and never 0
 * (INCR never gives 0 here: the script refused signs). */
static int
kv_redis_counter_parse(const char *text, size_t len, uint64_t *value_out)
{
    uint64_t value = 0;
    int rc = kv_counter_parse(text, len, &value);
    if (rc != 0 || value == 0) {
        return -EINVAL;
    }
    *value_out = value;
    return 0;
}

/* Set slot->result (and value/number) from its replies; refresh the cache. */
static void
kv_redis_settle(struct kv_redis *store, struct kv_redis_slot *slot, redisReply **replies)
{
    const uint8_t *user_key = slot->key + store->prefix_len;
    size_t user_key_len = slot->key_len - store->prefix_len;
    const redisReply *reply = replies[0];
    switch ((enum kv_redis_op)slot->op) {
    case KV_REDIS_OP_SET:
        if (kv_redis_reply_is_status(reply, "OK")) {
            slot->result = 0;
            uint32_t ttl_s =
                slot->ttl_s == 0 || slot->ttl_s > store->cache_s ? store->cache_s : slot->ttl_s;
            kv_redis_cache_put(store, user_key, user_key_len, slot->value, slot->value_len, ttl_s);
        } else {
            slot->result = kv_redis_reply_error(store, reply);
            kv_redis_cache_forget(store, user_key, user_key_len);
        }
        break;
    case KV_REDIS_OP_GET: {
        const redisReply *pttl = replies[1];
        if (reply->type == REDIS_REPLY_NIL) {
            slot->result = -ENOENT;
            kv_redis_cache_put_absent(store, user_key, user_key_len);
        } else if (reply->type == REDIS_REPLY_STRING) {
            if (reply->len > KV_VALUE_BYTES_MAX) {
                slot->result = -ENOSPC; /* not written by a kv store */
                break;
            }
            slot->result = 0;
            slot->value_len = (uint8_t)reply->len;
            if (reply->len > 0) {
                memcpy(slot->value, reply->str, reply->len);
            }
            int64_t pttl_ms = pttl->type == REDIS_REPLY_INTEGER ? pttl->integer : -2;
            kv_redis_cache_put(store, user_key, user_key_len, slot->value, slot->value_len,
                               kv_redis_cache_ttl_s(store, pttl_ms));
        } else {
            slot->result = kv_redis_reply_error(store, reply);
        }
        break;
    }
    case KV_REDIS_OP_DEL:
        if (reply->type == REDIS_REPLY_INTEGER) {
            slot->result = reply->integer > 0 ? 0 : -ENOENT;
            kv_redis_cache_put_absent(store, user_key, user_key_len);
        } else {
            slot->result = kv_redis_reply_error(store, reply);
        }
        break;
    case KV_REDIS_OP_INCR:
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            reply->element[0]->type == REDIS_REPLY_STRING &&
            reply->element[1]->type == REDIS_REPLY_INTEGER &&
            kv_redis_counter_parse(reply->element[0]->str, reply->element[0]->len, &slot->number) ==
                0) {
            slot->result = 0;
            kv_redis_cache_put(store, user_key, user_key_len, reply->element[0]->str,
                               reply->element[0]->len,
                               kv_redis_cache_ttl_s(store, reply->element[1]->integer));
        } else {
            slot->result = kv_redis_reply_error(store, reply);
            kv_redis_cache_forget(store, user_key, user_key_len);
        }
        break;
    case KV_REDIS_OP_COUNT:
        ASSERT(!"count is settled by kv_redis_run_count");
        break;
    }
}

/* Count the keys under the prefix: DBSIZE without one, else SCAN MATCH
 * (which walks the whole keyspace: O(keys in the database)). Returns 0, or
 * -EIO when the connection broke, or -EAGAIN (error reply, too many calls). */
static int
kv_redis_run_count(struct kv_redis *store, redisContext *ctx, uint64_t *count_out)
{
    if (store->prefix_len == 0) {
        const char *argv[] = {"DBSIZE"};
        size_t lens[] = {6};
        kv_redis_count_add(&store->counters.commands);
        redisReply *reply = redisCommandArgv(ctx, 1, argv, lens);
        if (reply == NULL) {
            return -EIO;
        }
        int rc = -EAGAIN;
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer >= 0) {
            *count_out = (uint64_t)reply->integer;
            rc = 0;
        } else {
            kv_redis_count_add(&store->counters.errors);
        }
        freeReplyObject(reply);
        return rc;
    }
    char pattern[2 * KV_REDIS_PREFIX_BYTES_MAX + 2];
    int pattern_len =
        kv_redis_match_pattern(store->prefix, store->prefix_len, pattern, sizeof(pattern));
    ASSERT(pattern_len > 0); /* sized for the worst prefix */
    char cursor[KV_REDIS_NUMBER_BYTES] = "0";
    uint64_t count = 0;
    for (uint32_t calls = 0; calls < KV_REDIS_SCAN_CALLS_MAX; calls++) {
        const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", KV_REDIS_SCAN_COUNT};
        size_t lens[] = {
            4, strlen(cursor), 5, (size_t)pattern_len, 5, sizeof(KV_REDIS_SCAN_COUNT) - 1};
        kv_redis_count_add(&store->counters.commands);
        redisReply *reply = redisCommandArgv(ctx, 6, argv, lens);
        if (reply == NULL) {
            return -EIO;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[0]->len >= sizeof(cursor) ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            kv_redis_count_add(&store->counters.errors);
            freeReplyObject(reply);
            return -EAGAIN;
        }
        count += reply->element[1]->elements;
        memcpy(cursor, reply->element[0]->str, reply->element[0]->len);
        cursor[reply->element[0]->len] = '\0';
        freeReplyObject(reply);
        if (strcmp(cursor, "0") == 0) {
            *count_out = count;
            return 0;
        }
    }
    kv_redis_count_add(&store->counters.errors);
    return -EAGAIN; /* a keyspace too large to count this way */
}

/* Hand a finished slot to its waiter, or free it. Under the lock. */
static void
kv_redis_complete(struct kv_redis *store, struct kv_redis_slot *slot)
{
    if (slot->op == KV_REDIS_OP_COUNT) {
        if (slot->result == 0) {
            store->last_count = slot->number;
        }
        if (!slot->has_waiter) {
            store->is_count_queued = false;
        }
    }
    if (slot->has_waiter) {
        slot->state = KV_REDIS_SLOT_DONE;
        int rc = pthread_cond_signal(&slot->done_cond);
        ASSERT(rc == 0);
    } else {
        kv_redis_slot_release(store, slot);
    }
}

/* Send a batch of slots and settle each. Returns false if the connection
 * broke (the slots left unsettled keep result -EAGAIN). */
static bool
kv_redis_run_batch(struct kv_redis *store, redisContext *ctx, struct kv_redis_slot **batch,
                   uint32_t batch_len)
{
    int expected[KV_REDIS_BATCH_MAX];
    bool is_settled[KV_REDIS_BATCH_MAX] = {false};
    bool is_alive = true;
    for (uint32_t i = 0; i < batch_len && is_alive; i++) {
        expected[i] = batch[i]->op == KV_REDIS_OP_COUNT ? 0 : kv_redis_append(store, ctx, batch[i]);
        is_alive = expected[i] >= 0;
    }
    for (uint32_t i = 0; i < batch_len && is_alive; i++) {
        if (expected[i] == 0) {
            continue;
        }
        redisReply *replies[2] = {NULL, NULL};
        ASSERT(expected[i] <= 2);
        for (int r = 0; r < expected[i] && is_alive; r++) {
            void *reply = NULL;
            is_alive = redisGetReply(ctx, &reply) == REDIS_OK && reply != NULL;
            replies[r] = reply;
        }
        if (is_alive) {
            kv_redis_settle(store, batch[i], replies);
            is_settled[i] = true;
        }
        freeReplyObject(replies[0]); /* NULL is fine */
        freeReplyObject(replies[1]);
    }
    for (uint32_t i = 0; i < batch_len && is_alive; i++) {
        if (batch[i]->op == KV_REDIS_OP_COUNT) {
            int rc = kv_redis_run_count(store, ctx, &batch[i]->number);
            is_alive = rc != -EIO;
            is_settled[i] = is_alive;
            batch[i]->result = rc == -EIO ? -EAGAIN : rc;
        }
    }
    for (uint32_t i = 0; i < batch_len; i++) {
        if (!is_settled[i]) {
            kv_redis_count_add(&store->counters.errors); /* lost with the connection */
        }
    }
    return is_alive;
}

/* Whether an idle connection is still there: nothing may be readable on
 * it, since we asked nothing; readable means closed (Redis restarted, or
 * its `timeout` dropped us) or a protocol error. Found now, not by the
 * next request. */
static bool
kv_redis_is_idle_alive(const redisContext *ctx)
{
    struct pollfd pfd = {.fd = ctx->fd, .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    return n == 0 || (n < 0 && errno == EINTR);
}

/* Fail everything queued with -EAGAIN (connection lost, or stopping).
 * Under the lock. */
static void
kv_redis_fail_queued(struct kv_redis *store)
{
    while (store->queue_len > 0) {
        struct kv_redis_slot *slot = &store->slots[store->queue[store->queue_head]];
        store->queue_head = (store->queue_head + 1) % store->slot_count;
        store->queue_len--;
        slot->result = -EAGAIN;
        kv_redis_count_add(&store->counters.errors);
        kv_redis_complete(store, slot);
    }
}

/* Sleep backoff_ms unless asked to stop. Returns false when stopping. */
static bool
kv_redis_backoff(struct kv_redis *store, uint32_t backoff_ms)
{
    struct timespec deadline = kv_redis_deadline(backoff_ms);
    kv_redis_lock(store);
    while (!store->is_stopping) {
        int rc = pthread_cond_timedwait(&store->work_cond, &store->lock, &deadline);
        if (rc == ETIMEDOUT) {
            break;
        }
        ASSERT(rc == 0);
    }
    bool is_stopping = store->is_stopping;
    kv_redis_unlock(store);
    return !is_stopping;
}

static void *
kv_redis_main(void *arg)
{
    struct kv_redis *store = arg;
    redisContext *ctx = NULL;
    uint32_t backoff_ms = KV_REDIS_BACKOFF_MIN_MS;
    bool is_quiet = false; /* one log line per outage, not one per attempt */
    for (;;) {
        if (ctx == NULL) {
            kv_redis_lock(store);
            bool is_stopping = store->is_stopping;
            kv_redis_unlock(store);
            if (is_stopping) {
                break; /* what is queued fails below: there is no Redis to send it to */
            }
            ctx = kv_redis_connect(store, is_quiet);
            if (ctx == NULL) {
                kv_redis_count_add(&store->counters.connect_failures);
                is_quiet = true;
                if (!kv_redis_backoff(store, backoff_ms)) {
                    break;
                }
                backoff_ms = backoff_ms * 2 > KV_REDIS_BACKOFF_MAX_MS ? KV_REDIS_BACKOFF_MAX_MS
                                                                      : backoff_ms * 2;
                continue;
            }
            kv_redis_count_add(&store->counters.connects);
            if (is_quiet) {
                log_info("redis: connected again");
            }
            is_quiet = false;
            backoff_ms = KV_REDIS_BACKOFF_MIN_MS;
            kv_redis_lock(store);
            store->is_connected = true;
            kv_redis_unlock(store);
        }

        struct kv_redis_slot *batch[KV_REDIS_BATCH_MAX];
        uint32_t batch_len = 0;
        bool is_idle = false;
        kv_redis_lock(store);
        struct timespec idle_deadline = kv_redis_deadline(KV_REDIS_IDLE_CHECK_MS);
        while (!store->is_stopping && store->queue_len == 0 && !is_idle) {
            int rc = pthread_cond_timedwait(&store->work_cond, &store->lock, &idle_deadline);
            ASSERT(rc == 0 || rc == ETIMEDOUT);
            is_idle = rc == ETIMEDOUT;
        }
        if (store->is_stopping && store->queue_len == 0) {
            kv_redis_unlock(store);
            break;
        }
        /* Stopping with requests queued (a reactor's last writes): they are
         * sent first, each batch bounded by io_timeout_ms. */
        while (store->queue_len > 0 && batch_len < KV_REDIS_BATCH_MAX) {
            struct kv_redis_slot *slot = &store->slots[store->queue[store->queue_head]];
            store->queue_head = (store->queue_head + 1) % store->slot_count;
            store->queue_len--;
            ASSERT(slot->state == KV_REDIS_SLOT_QUEUED);
            slot->state = KV_REDIS_SLOT_SENT;
            batch[batch_len++] = slot;
        }
        kv_redis_unlock(store);

        bool is_alive = batch_len > 0 ? kv_redis_run_batch(store, ctx, batch, batch_len)
                                      : kv_redis_is_idle_alive(ctx);
        if (!is_alive) {
            log_error("redis: connection lost: %s",
                      ctx->err != 0 ? ctx->errstr : "closed while idle, or out of memory");
            is_quiet = true;
        }
        kv_redis_lock(store);
        for (uint32_t i = 0; i < batch_len; i++) {
            kv_redis_complete(store, batch[i]);
        }
        if (!is_alive) {
            store->is_connected = false;
            kv_redis_fail_queued(store);
        }
        kv_redis_unlock(store);
        if (!is_alive) {
            kv_redis_count_add(&store->counters.disconnects);
            redisFree(ctx);
            ctx = NULL;
        }
    }
    kv_redis_lock(store);
    store->is_connected = false;
    kv_redis_fail_queued(store);
    kv_redis_unlock(store);
    if (ctx != NULL) {
        redisFree(ctx);
    }
    return NULL;
}

static const struct kv_ops kv_redis_ops = {
    .name = "redis",
    .set = kv_redis_set,
    .get = kv_redis_get,
    .del = kv_redis_del,
    .incr = kv_redis_incr,
    .count = kv_redis_count,
    .destroy = kv_redis_destroy,
};
