/*
 * tests/unit/test_kv.c - the key-value store's embedded backend through
 * the kv interface: set/get/delete/incr, the key and value bounds at
 * max - 1, max and max + 1, expiry driven by an injected clock (ttl 0
 * never expires; an incr window keeps its first expiry), the entry bound
 * under many more keys than entries (expired entries go first, then the
 * least recently written), and counters hammered from several threads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/kv.h"
#include "tests/unit/unit.h"

int main(void);

static uint64_t fake_now_ms;

static uint64_t
fake_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&fake_now_ms, __ATOMIC_RELAXED);
}

static int
set_str(struct kv *kv, const char *key, const char *value, uint32_t ttl_s)
{
    return kv_set(kv, key, strlen(key), value, strlen(value), ttl_s);
}

/* 0 and the value in out, or the error. */
static int
get_str(struct kv *kv, const char *key, char *out, size_t out_bytes)
{
    size_t len = 0;
    int rc = kv_get(kv, key, strlen(key), out, out_bytes - 1, &len);
    out[rc == 0 ? len : 0] = '\0';
    return rc;
}

static void
test_basics(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, fake_clock, NULL, &kv) == 0);
    CHECK(strcmp(kv_backend_name(kv), "embedded") == 0);
    char value[KV_VALUE_BYTES_MAX + 1];
    CHECK(get_str(kv, "a", value, sizeof(value)) == -ENOENT);
    CHECK(set_str(kv, "a", "one", 0) == 0);
    CHECK(get_str(kv, "a", value, sizeof(value)) == 0);
    CHECK_STR(value, "one");
    CHECK(set_str(kv, "a", "two", 0) == 0); /* replaces */
    CHECK(get_str(kv, "a", value, sizeof(value)) == 0);
    CHECK_STR(value, "two");
    CHECK(kv_count(kv) == 1);
    /* Empty value is a value. */
    CHECK(set_str(kv, "empty", "", 0) == 0);
    CHECK(get_str(kv, "empty", value, sizeof(value)) == 0);
    CHECK_STR(value, "");
    /* A buffer too small: -ENOSPC, nothing copied. */
    size_t len = 99;
    char small[2];
    CHECK(kv_get(kv, "a", 1, small, sizeof(small), &len) == -ENOSPC);
    CHECK(len == 99);
    /* Delete. */
    CHECK(kv_delete(kv, "a", 1) == 0);
    CHECK(kv_delete(kv, "a", 1) == -ENOENT);
    CHECK(get_str(kv, "a", value, sizeof(value)) == -ENOENT);
    /* Keys are bytes, not C strings. */
    CHECK(kv_set(kv, "k\0x", 3, "1", 1, 0) == 0);
    CHECK(kv_set(kv, "k\0y", 3, "2", 1, 0) == 0);
    CHECK(kv_get(kv, "k\0x", 3, value, sizeof(value), &len) == 0 && len == 1 &&
          value[0] == '1');
    CHECK(kv_get(kv, "k\0y", 3, value, sizeof(value), &len) == 0 && len == 1 &&
          value[0] == '2');

    /* Bounds: key and value at max - 1, max, max + 1; empty key. */
    char key[KV_KEY_BYTES_MAX + 1];
    memset(key, 'k', sizeof(key));
    char big[KV_VALUE_BYTES_MAX + 1];
    memset(big, 'v', sizeof(big));
    CHECK(kv_set(kv, key, KV_KEY_BYTES_MAX - 1, "x", 1, 0) == 0);
    CHECK(kv_set(kv, key, KV_KEY_BYTES_MAX, "x", 1, 0) == 0);
    CHECK(kv_set(kv, key, KV_KEY_BYTES_MAX + 1, "x", 1, 0) == -EINVAL);
    CHECK(kv_get(kv, key, KV_KEY_BYTES_MAX + 1, value, sizeof(value), &len) == -EINVAL);
    CHECK(kv_delete(kv, key, KV_KEY_BYTES_MAX + 1) == -EINVAL);
    uint64_t n = 0;
    CHECK(kv_incr(kv, key, KV_KEY_BYTES_MAX + 1, 0, &n) == -EINVAL);
    CHECK(kv_set(kv, "", 0, "x", 1, 0) == -EINVAL);
    CHECK(kv_set(kv, "v", 1, big, KV_VALUE_BYTES_MAX - 1, 0) == 0);
    CHECK(kv_set(kv, "v", 1, big, KV_VALUE_BYTES_MAX, 0) == 0);
    CHECK(kv_get(kv, "v", 1, value, sizeof(value), &len) == 0 && len == KV_VALUE_BYTES_MAX);
    CHECK(kv_set(kv, "v", 1, big, KV_VALUE_BYTES_MAX + 1, 0) == -EINVAL);
    CHECK(kv_get(kv, "v", 1, value, sizeof(value), &len) == 0 && len == KV_VALUE_BYTES_MAX);

    /* Counters. */
    CHECK(kv_incr(kv, "c", 1, 0, &n) == 0 && n == 1);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == 0 && n == 2);
    CHECK(get_str(kv, "c", value, sizeof(value)) == 0);
    CHECK_STR(value, "2");
    CHECK(set_str(kv, "c", "41", 0) == 0);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == 0 && n == 42);
    CHECK(set_str(kv, "c", "forty", 0) == 0);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == -EINVAL);
    CHECK(get_str(kv, "c", value, sizeof(value)) == 0);
    CHECK_STR(value, "forty"); /* untouched */
    CHECK(set_str(kv, "c", "18446744073709551614", 0) == 0);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == 0 && n == UINT64_MAX);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == -ERANGE);
    CHECK(get_str(kv, "c", value, sizeof(value)) == 0);
    CHECK_STR(value, "18446744073709551615");
    CHECK(set_str(kv, "c", "", 0) == 0);
    CHECK(kv_incr(kv, "c", 1, 0, &n) == -EINVAL);

    kv_destroy(&kv);
    CHECK(kv == NULL);
    kv_destroy(&kv); /* a second destroy is harmless */
    CHECK(kv_embedded_create(0, NULL, NULL, &kv) == -EINVAL);
    CHECK(kv_embedded_create(KV_EMBEDDED_ENTRIES_CEILING + 1, NULL, NULL, &kv) == -EINVAL);
}

static void
test_expiry(void)
{
    struct kv *kv = NULL;
    fake_now_ms = 1000000;
    CHECK(kv_embedded_create(64, fake_clock, NULL, &kv) == 0);
    char value[KV_VALUE_BYTES_MAX + 1];
    CHECK(set_str(kv, "short", "s", 10) == 0);
    CHECK(set_str(kv, "forever", "f", 0) == 0);
    fake_now_ms += 9999; /* ttl - 1 ms */
    CHECK(get_str(kv, "short", value, sizeof(value)) == 0);
    fake_now_ms += 1; /* exactly ttl */
    CHECK(get_str(kv, "short", value, sizeof(value)) == -ENOENT);
    CHECK(kv_delete(kv, "short", 5) == -ENOENT);
    CHECK(kv_count(kv) == 1);
    fake_now_ms += 86400000ull * 365;
    CHECK(get_str(kv, "forever", value, sizeof(value)) == 0);
    /* Setting again restarts the TTL; a set without TTL clears it. */
    CHECK(set_str(kv, "k", "1", 5) == 0);
    fake_now_ms += 4000;
    CHECK(set_str(kv, "k", "2", 5) == 0);
    fake_now_ms += 4000;
    CHECK(get_str(kv, "k", value, sizeof(value)) == 0);
    CHECK_STR(value, "2");
    CHECK(set_str(kv, "k", "3", 0) == 0);
    fake_now_ms += 60000;
    CHECK(get_str(kv, "k", value, sizeof(value)) == 0);

    /* incr: a fixed window from the first increment. */
    uint64_t n = 0;
    CHECK(kv_incr(kv, "r", 1, 60, &n) == 0 && n == 1);
    fake_now_ms += 30000;
    CHECK(kv_incr(kv, "r", 1, 60, &n) == 0 && n == 2);
    fake_now_ms += 29999;
    CHECK(kv_incr(kv, "r", 1, 60, &n) == 0 && n == 3);
    fake_now_ms += 1; /* 60 s after the first */
    CHECK(kv_incr(kv, "r", 1, 60, &n) == 0 && n == 1);
    kv_destroy(&kv);
}

static void
test_eviction(void)
{
    struct kv *kv = NULL;
    fake_now_ms = 5000;
    /* 100 rounds up to 104 (13 sets of 8). */
    CHECK(kv_embedded_create(100, fake_clock, NULL, &kv) == 0);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        CHECK(set_str(kv, key, "v", 0) == 0);
        if (i % 1000 == 0) {
            CHECK(kv_count(kv) <= 104);
        }
    }
    size_t count = kv_count(kv);
    CHECK(count <= 104);
    CHECK(count >= 96); /* the table does fill up */
    /* The last key written is always there: eviction takes the oldest. */
    char value[KV_VALUE_BYTES_MAX + 1];
    CHECK(get_str(kv, "key-9999", value, sizeof(value)) == 0);
    CHECK(get_str(kv, "key-0", value, sizeof(value)) == -ENOENT);
    kv_destroy(&kv);

    /* One set of 8: expired entries are taken before live ones, and among
     * live ones the least recently written goes. */
    CHECK(kv_embedded_create(8, fake_clock, NULL, &kv) == 0);
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        CHECK(set_str(kv, key, "v", i == 3 ? 1 : 0) == 0);
    }
    CHECK(kv_count(kv) == 8);
    fake_now_ms += 1000; /* k3 expires */
    CHECK(set_str(kv, "new1", "v", 0) == 0);
    CHECK(get_str(kv, "k0", value, sizeof(value)) == 0); /* oldest survived */
    CHECK(get_str(kv, "k3", value, sizeof(value)) == -ENOENT);
    CHECK(kv_count(kv) == 8);
    CHECK(set_str(kv, "k1", "again", 0) == 0); /* k1 is recent now */
    CHECK(set_str(kv, "new2", "v", 0) == 0);   /* evicts k0, the oldest */
    CHECK(get_str(kv, "k0", value, sizeof(value)) == -ENOENT);
    CHECK(get_str(kv, "k1", value, sizeof(value)) == 0);
    CHECK(set_str(kv, "new3", "v", 0) == 0); /* evicts k2 */
    CHECK(get_str(kv, "k2", value, sizeof(value)) == -ENOENT);
    CHECK(get_str(kv, "k1", value, sizeof(value)) == 0);
    CHECK(get_str(kv, "new1", value, sizeof(value)) == 0);
    CHECK(kv_count(kv) == 8);
    /* A deleted entry is free again: nothing is evicted for the next. */
    CHECK(kv_delete(kv, "k4", 2) == 0);
    CHECK(set_str(kv, "new4", "v", 0) == 0);
    CHECK(get_str(kv, "k5", value, sizeof(value)) == 0);
    kv_destroy(&kv);
}

#define THREADS 8
#define INCRS_PER_THREAD 20000
#define SHARED_KEYS 16

struct worker_arg {
    struct kv *kv;
    int        index;
    int        failures;
};

static void *
worker(void *p)
{
    struct worker_arg *arg = p;
    char key[32];
    for (int i = 0; i < INCRS_PER_THREAD; i++) {
        uint64_t n = 0;
        snprintf(key, sizeof(key), "shared-%d", i % SHARED_KEYS);
        if (kv_incr(arg->kv, key, strlen(key), 0, &n) != 0 || n == 0) {
            arg->failures++;
        }
        /* Churn on private keys beside the counters, in a table small
         * enough to evict: the counters live in their own table. */
        snprintf(key, sizeof(key), "own-%d-%d", arg->index, i % 50);
        char value[KV_VALUE_BYTES_MAX];
        size_t len = 0;
        if (kv_set(arg->kv, key, strlen(key), "x", 1, 1) != 0) {
            arg->failures++;
        }
        int rc = kv_get(arg->kv, key, strlen(key), value, sizeof(value), &len);
        if (rc != 0 && rc != -ENOENT) {
            arg->failures++;
        }
    }
    return NULL;
}

static void
test_threads(void)
{
    struct kv *kv = NULL;
    /* Big enough that 16 counters and 8 * 50 private keys never evict a
     * counter (each set holds 8; the seeded hash spreads keys). */
    CHECK(kv_embedded_create(65536, NULL, NULL, &kv) == 0);
    pthread_t threads[THREADS];
    struct worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct worker_arg){ .kv = kv, .index = t };
        CHECK(pthread_create(&threads[t], NULL, worker, &args[t]) == 0);
    }
    int failures = 0;
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        failures += args[t].failures;
    }
    CHECK(failures == 0);
    /* Every increment counted exactly once. */
    uint64_t total = 0;
    for (int k = 0; k < SHARED_KEYS; k++) {
        char key[32];
        char value[KV_VALUE_BYTES_MAX + 1];
        snprintf(key, sizeof(key), "shared-%d", k);
        CHECK(get_str(kv, key, value, sizeof(value)) == 0);
        total += strtoull(value, NULL, 10);
    }
    CHECK(total == (uint64_t)THREADS * INCRS_PER_THREAD);
    CHECK(kv_count(kv) <= SHARED_KEYS + THREADS * 50);
    kv_destroy(&kv);
}

int
main(void)
{
    test_basics();
    test_expiry();
    test_eviction();
    test_threads();
    UNIT_DONE();
}
