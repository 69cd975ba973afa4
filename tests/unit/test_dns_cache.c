/*
 * tests/unit/test_dns_cache.c - the answer cache (core/dns_cache) with an
 * injected clock: keys are (type, name), TTLs expire to the millisecond,
 * TTL 0 is not kept, the entry bound and the byte bound evict the least
 * recently used entries (a get refreshes), a replaced or evicted answer
 * lives on while a reader holds it, and several threads reading and
 * writing at once keep the bounds.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dns_cache.h"
#include "tests/unit/unit.h"

int main(void);

static uint64_t fake_now_ms = 1000000;

static uint64_t
fake_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&fake_now_ms, __ATOMIC_RELAXED);
}

static struct dns_result *
make(const char *name, enum dns_type type, uint32_t ttl, uint32_t address)
{
    struct dns_record record;
    memset(&record, 0, sizeof(record));
    record.a.s_addr = address;
    struct dns_result *result = NULL;
    int rc = dns_result_create(name, type, DNS_STATUS_OK, ttl, false, &record,
                               type == DNS_TYPE_A ? 1 : 0, &result);
    if (type != DNS_TYPE_A) {
        dns_result_unref(&result);
        rc = dns_result_create(name, type, DNS_STATUS_NODATA, ttl, false, NULL, 0, &result);
    }
    CHECK(rc == 0);
    return result;
}

/* Put a new result and drop our reference. */
static int
put(struct dns_cache *cache, const char *name, enum dns_type type, uint32_t ttl,
    uint32_t address)
{
    struct dns_result *result = make(name, type, ttl, address);
    int rc = dns_cache_put(cache, result);
    dns_result_unref(&result);
    return rc;
}

/* The A address cached for name, 0 when absent. */
static uint32_t
get_a(struct dns_cache *cache, const char *name)
{
    struct dns_result *result = NULL;
    if (dns_cache_get(cache, DNS_TYPE_A, name, &result) != 0) {
        return 0;
    }
    uint32_t address = result->answer.records[0].a.s_addr;
    dns_result_unref(&result);
    return address;
}

static void
test_basics_and_ttl(void)
{
    struct dns_cache *cache = NULL;
    CHECK(dns_cache_create(0, 1024, fake_clock, NULL, &cache) == -EINVAL);
    CHECK(dns_cache_create(DNS_CACHE_ENTRIES_CEILING + 1, 1024, fake_clock, NULL, &cache) ==
          -EINVAL);
    CHECK(dns_cache_create(16, 0, fake_clock, NULL, &cache) == -EINVAL);
    CHECK(dns_cache_create(16, 1 << 20, fake_clock, NULL, &cache) == 0);
    CHECK(dns_cache_now_ms(cache) == fake_now_ms);

    struct dns_result *result = NULL;
    CHECK(dns_cache_get(cache, DNS_TYPE_A, "a.test", &result) == -ENOENT);
    CHECK(put(cache, "a.test", DNS_TYPE_A, 10, 1) == 0);
    CHECK(put(cache, "a.test", DNS_TYPE_MX, 20, 0) == 0); /* another key: the type */
    CHECK(put(cache, "b.test", DNS_TYPE_A, 0, 2) == -ENOSPC); /* TTL 0 is not kept */
    CHECK(dns_cache_count(cache) == 2);
    CHECK(get_a(cache, "a.test") == 1);
    CHECK(get_a(cache, "b.test") == 0);
    CHECK(dns_cache_get(cache, DNS_TYPE_MX, "a.test", &result) == 0);
    CHECK(result->answer.status == DNS_STATUS_NODATA);
    dns_result_unref(&result);
    CHECK(dns_cache_get(cache, DNS_TYPE_TXT, "a.test", &result) == -ENOENT);

    /* 10 s TTL: there at +9.999 s, gone at +10 s. */
    fake_now_ms += 9999;
    CHECK(get_a(cache, "a.test") == 1);
    fake_now_ms += 1;
    CHECK(get_a(cache, "a.test") == 0);
    CHECK(dns_cache_count(cache) == 1); /* the expired one went when met */
    CHECK(dns_cache_get(cache, DNS_TYPE_MX, "a.test", &result) == 0);
    dns_result_unref(&result);

    /* A put replaces the answer of the same key. */
    CHECK(put(cache, "c.test", DNS_TYPE_A, 100, 3) == 0);
    CHECK(put(cache, "c.test", DNS_TYPE_A, 100, 4) == 0);
    CHECK(get_a(cache, "c.test") == 4);
    CHECK(dns_cache_count(cache) == 2);
    dns_cache_destroy(&cache);
    CHECK(cache == NULL);
    dns_cache_destroy(&cache); /* NULL is fine */
}

static void
test_entry_bound(void)
{
    struct dns_cache *cache = NULL;
    CHECK(dns_cache_create(4, 1 << 20, fake_clock, NULL, &cache) == 0);
    char name[32];
    for (uint32_t i = 1; i <= 4; i++) {
        snprintf(name, sizeof(name), "n%u.test", i);
        CHECK(put(cache, name, DNS_TYPE_A, 300, i) == 0);
    }
    CHECK(dns_cache_count(cache) == 4);
    /* n1 is refreshed by a get, so n2 is the least recently used. */
    CHECK(get_a(cache, "n1.test") == 1);
    CHECK(put(cache, "n5.test", DNS_TYPE_A, 300, 5) == 0);
    CHECK(dns_cache_count(cache) == 4);
    CHECK(get_a(cache, "n2.test") == 0);
    CHECK(get_a(cache, "n1.test") == 1);
    CHECK(get_a(cache, "n3.test") == 3);
    CHECK(get_a(cache, "n5.test") == 5);
    /* Many more keys than entries: never more than 4. */
    for (uint32_t i = 6; i < 1000; i++) {
        snprintf(name, sizeof(name), "n%u.test", i);
        CHECK(put(cache, name, DNS_TYPE_A, 300, i) == 0);
        CHECK(dns_cache_count(cache) <= 4);
    }
    CHECK(get_a(cache, "n999.test") == 999);
    CHECK(get_a(cache, "n995.test") == 0);
    dns_cache_destroy(&cache);
}

static void
test_byte_bound(void)
{
    struct dns_result *probe = make("x0.test", DNS_TYPE_A, 300, 1);
    size_t one = probe->bytes;
    dns_result_unref(&probe);
    struct dns_cache *cache = NULL;
    /* Room for three results by bytes, though 100 entries. */
    CHECK(dns_cache_create(100, 3 * one, fake_clock, NULL, &cache) == 0);
    CHECK(put(cache, "x1.test", DNS_TYPE_A, 300, 1) == 0);
    CHECK(put(cache, "x2.test", DNS_TYPE_A, 300, 2) == 0);
    CHECK(put(cache, "x3.test", DNS_TYPE_A, 300, 3) == 0);
    CHECK(dns_cache_bytes(cache) == 3 * one);
    CHECK(put(cache, "x4.test", DNS_TYPE_A, 300, 4) == 0);
    CHECK(dns_cache_count(cache) == 3);
    CHECK(dns_cache_bytes(cache) == 3 * one);
    CHECK(get_a(cache, "x1.test") == 0);
    dns_cache_destroy(&cache);
    /* A result larger than the whole bound is not kept. */
    CHECK(dns_cache_create(100, one - 1, fake_clock, NULL, &cache) == 0);
    CHECK(put(cache, "big.test", DNS_TYPE_A, 300, 1) == -ENOSPC);
    CHECK(dns_cache_count(cache) == 0);
    dns_cache_destroy(&cache);
}

static void
test_pinned_outlives(void)
{
    struct dns_cache *cache = NULL;
    CHECK(dns_cache_create(1, 1 << 20, fake_clock, NULL, &cache) == 0);
    CHECK(put(cache, "p.test", DNS_TYPE_A, 5, 7) == 0);
    struct dns_result *pinned = NULL;
    CHECK(dns_cache_get(cache, DNS_TYPE_A, "p.test", &pinned) == 0);
    CHECK(pinned->refs == 2);
    /* Evicted by another key: our reference keeps it. */
    CHECK(put(cache, "q.test", DNS_TYPE_A, 5, 8) == 0);
    CHECK(pinned->refs == 1);
    CHECK(pinned->answer.records[0].a.s_addr == 7);
    /* Expired and replaced: the same. */
    struct dns_result *second = NULL;
    CHECK(dns_cache_get(cache, DNS_TYPE_A, "q.test", &second) == 0);
    fake_now_ms += 5000;
    CHECK(get_a(cache, "q.test") == 0);
    CHECK(second->refs == 1);
    CHECK(second->answer.records[0].a.s_addr == 8);
    dns_cache_destroy(&cache);
    CHECK(pinned->answer.records[0].a.s_addr == 7);
    dns_result_unref(&pinned);
    dns_result_unref(&second);
}

struct hammer {
    struct dns_cache *cache;
    unsigned          seed;
    unsigned long     hits;
    bool              is_wrong;
};

static void *
hammer_run(void *arg)
{
    struct hammer *h = arg;
    char name[32];
    for (int i = 0; i < 20000; i++) {
        unsigned k = (unsigned)rand_r(&h->seed) % 300;
        snprintf(name, sizeof(name), "h%u.test", k);
        if (i % 3 == 0) {
            /* No CHECK on these threads: the counters are not atomic. */
            struct dns_record record = { .a = { .s_addr = k + 1 } };
            struct dns_result *result = NULL;
            if (dns_result_create(name, DNS_TYPE_A, DNS_STATUS_OK, 60, false, &record, 1,
                                  &result) != 0) {
                h->is_wrong = true;
                break;
            }
            (void)dns_cache_put(h->cache, result); /* kept, or -ENOSPC never here */
            dns_result_unref(&result);
        } else {
            uint32_t a = get_a(h->cache, name);
            if (a != 0) {
                h->hits++;
                if (a != k + 1) {
                    h->is_wrong = true; /* an answer of another key */
                }
            }
        }
    }
    return NULL;
}

static void
test_threads(void)
{
    struct dns_cache *cache = NULL;
    CHECK(dns_cache_create(128, 1 << 20, fake_clock, NULL, &cache) == 0);
    pthread_t threads[4];
    struct hammer hammers[4];
    for (unsigned t = 0; t < 4; t++) {
        hammers[t] = (struct hammer){ .cache = cache, .seed = t + 1 };
        CHECK(pthread_create(&threads[t], NULL, hammer_run, &hammers[t]) == 0);
    }
    for (unsigned t = 0; t < 4; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        CHECK(hammers[t].hits > 0);
        CHECK(!hammers[t].is_wrong);
    }
    CHECK(dns_cache_count(cache) <= 128);
    dns_cache_destroy(&cache);
}

int
main(void)
{
    test_basics_and_ttl();
    test_entry_bound();
    test_byte_bound();
    test_pinned_outlives();
    test_threads();
    UNIT_DONE();
}
