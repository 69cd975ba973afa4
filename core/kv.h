/*
 * core/kv.h - the key-value store: short byte-string keys and values with
 * time-to-live, as postscreen's memory of good and bad clients and the rate
 * counters need, and as the filters (greylisting, rate limits, Bayes) will.
 *
 * One interface, several backends behind it: a struct kv carries a table of
 * operations, so callers never know which one answers: the embedded
 * backend (a fixed-size in-memory table, see kv_embedded_create) and Redis
 * (config key `redis`, see core/kv_redis.h).
 *
 * The contract every backend keeps: a call never blocks the calling thread
 * on I/O (reactors call it), and any thread may call it at any time. A
 * backend that cannot answer at once (a Redis that is down or slow) returns
 * -EAGAIN and callers treat that as a miss, never as an accepted fact.
 * Keys and values are bounded (KV_KEY_BYTES_MAX, KV_VALUE_BYTES_MAX).
 */
#ifndef TOASTER_CORE_KV_H
#define TOASTER_CORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

struct kv;

/* Entries per set in the embedded table: a key lives in one set, and a
 * lookup reads that set only. */
#define KV_EMBEDDED_WAYS 8u

/* A clock in milliseconds (monotonic); tests inject their own. */
typedef uint64_t (*kv_clock_fn)(void *clock_arg);

/* What a backend implements; see the kv_* functions for the meaning. */
struct kv_ops {
    const char *name; /* "embedded", "redis" */
    int (*set)(struct kv *kv, const void *key, size_t key_len, const void *value,
               size_t value_len, uint32_t ttl_s);
    int (*get)(struct kv *kv, const void *key, size_t key_len, void *value_out,
               size_t value_bytes, size_t *value_len_out);
    int (*del)(struct kv *kv, const void *key, size_t key_len);
    int (*incr)(struct kv *kv, const void *key, size_t key_len, uint32_t ttl_s,
                uint64_t *value_out);
    size_t (*count)(struct kv *kv);
    void (*destroy)(struct kv *kv);
};

/* Every backend's handle starts with this. */
struct kv {
    const struct kv_ops *ops;
};

/* The embedded backend: at most entry_count entries (rounded up to a
 * multiple of KV_EMBEDDED_WAYS), allocated once here and never grown. A
 * new key takes a free or expired entry of its set of KV_EMBEDDED_WAYS, or
 * else evicts the set's least recently written one. clock may be NULL
 * (CLOCK_MONOTONIC). Returns 0 and sets *kv_out, -EINVAL for a count of 0
 * or above KV_EMBEDDED_ENTRIES_CEILING, or -ENOMEM. */
int kv_embedded_create(uint32_t entry_count, kv_clock_fn clock, void *clock_arg,
                       struct kv **kv_out);

/* Free the store and everything in it; NULLs *kv. Nobody may use it then. */
void kv_destroy(struct kv **kv);

/* Store value under key for ttl_s seconds (0: until evicted or deleted),
 * replacing what was there. Returns 0, -EINVAL (empty or too long key, too
 * long value) or -EAGAIN (backend unavailable). */
int kv_set(struct kv *kv, const void *key, size_t key_len, const void *value, size_t value_len,
           uint32_t ttl_s);

/* Copy the value of key into value_out (value_bytes long) and its length
 * into *value_len_out. Returns 0, -ENOENT (absent or expired), -ENOSPC
 * (value_out too small; nothing copied), -EINVAL or -EAGAIN. */
int kv_get(struct kv *kv, const void *key, size_t key_len, void *value_out, size_t value_bytes,
           size_t *value_len_out);

/* Remove key. Returns 0, -ENOENT (was not there), -EINVAL or -EAGAIN. */
int kv_delete(struct kv *kv, const void *key, size_t key_len);

/* Add one to the decimal counter under key and set *value_out to the new
 * value. A missing or expired key starts at 1 and lives ttl_s seconds from
 * now; later increments keep that expiry (a fixed window, as Redis INCR
 * followed by EXPIRE NX). Returns 0, -EINVAL (bad key, or the value is not
 * a decimal counter), -ERANGE (would overflow) or -EAGAIN. */
int kv_incr(struct kv *kv, const void *key, size_t key_len, uint32_t ttl_s, uint64_t *value_out);

/* Live (unexpired) entries now. Costs a scan on the embedded backend: for
 * tests and statistics, not for the hot path. */
size_t kv_count(struct kv *kv);

/* The backend's name, for logs. */
const char *kv_backend_name(const struct kv *kv);

/* Whether the calling thread may wait a short, bounded time for a backend
 * that answers over the network (Redis: up to redis_timeout_ms per call).
 * Off in every thread until it says otherwise: worker threads switch it on
 * when they start; reactor threads never do, and then a networked backend
 * answers from what it already knows or -EAGAIN. The embedded backend
 * never waits either way. Thread-local; no lock. */
void kv_thread_may_wait(bool may_wait);
bool kv_thread_can_wait(void);

/* ---- walking and refilling the embedded backend (core/kv_snapshot) ----- */

/* One live entry as kv_embedded_foreach hands it over: a copy, valid only
 * during the callback. */
struct kv_embedded_item {
    const uint8_t *key;
    size_t         key_len;
    const uint8_t *value;
    size_t         value_len;
    uint64_t       ttl_ms; /* time left by the store's clock; 0: no expiry */
};

/* Called for each live entry; 0 goes on, anything else stops the walk. */
typedef int (*kv_embedded_item_fn)(const struct kv_embedded_item *item, void *arg);

/* Call fn for every live entry of an embedded store, set by set. Each
 * set's entries are copied out under that set's lock, and the lock is let
 * go before fn runs, so fn may do I/O and other threads use the store all
 * the while; an entry written or deleted during the walk may or may not be
 * seen (no point-in-time view). Returns 0, fn's first nonzero result, or
 * -EOPNOTSUPP when kv is not the embedded backend. */
int kv_embedded_foreach(struct kv *kv, kv_embedded_item_fn fn, void *arg);

/* Put an entry back with ttl_ms to live (0: no expiry), as loading a
 * snapshot does. Unlike kv_set it neither evicts nor replaces: returns 0,
 * -EEXIST (the key is live already: the newer write wins), -ENOSPC (its
 * set has no free or expired entry: the store is smaller than what it is
 * refilled from), -EINVAL (bad key or value) or -EOPNOTSUPP (not the
 * embedded backend). */
int kv_embedded_restore(struct kv *kv, const void *key, size_t key_len, const void *value,
                        size_t value_len, uint64_t ttl_ms);

/* A counter's value as every backend stores it: 1 to 20 decimal digits
 * (UINT64_MAX has 20). Returns 0, or -EINVAL for anything else. */
int kv_counter_parse(const void *bytes, size_t len, uint64_t *value_out);

#endif
