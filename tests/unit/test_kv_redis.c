/*
 * tests/unit/test_kv_redis.c - the pure parts of the Redis backend
 * (core/kv_redis.h), without a server: the address parser (host:port,
 * [v6]:port, unix:/path, and each bound broken), the mapping of Redis
 * error replies to kv codes, the SCAN MATCH pattern escaping, and
 * kv_redis_create refusing bad configuration at once. A store pointed at
 * a closed port answers -EAGAIN at once and is destroyed cleanly; the
 * may-wait flag is per thread and off in a new thread. The
 * talking-to-Redis behaviour is tests/integration/test_kv_redis.py.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kv.h"
#include "core/kv_redis.h"
#include "tests/unit/unit.h"

int main(void);

static void
test_address(void)
{
    struct kv_redis_address a;
    CHECK(kv_redis_address_parse("127.0.0.1:6379", &a) == 0);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK(a.port == 6379);
    CHECK(a.path[0] == '\0');
    CHECK(kv_redis_address_parse("redis.example.org:1", &a) == 0);
    CHECK_STR(a.host, "redis.example.org");
    CHECK(a.port == 1);
    CHECK(kv_redis_address_parse("[::1]:65535", &a) == 0);
    CHECK_STR(a.host, "::1");
    CHECK(a.port == 65535);
    CHECK(kv_redis_address_parse("unix:/run/redis/redis.sock", &a) == 0);
    CHECK_STR(a.path, "/run/redis/redis.sock");
    CHECK(a.host[0] == '\0');

    const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":6379",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:123456",
        "127.0.0.1:12a",
        "127.0.0.1:-1",
        "::1:6379",
        "[::1]6379",
        "[::1]:",
        "[]:6379",
        "unix:",
        "unix:relative.sock",
        "a b:6379",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(kv_redis_address_parse(bad[i], &a) == -EINVAL);
    }
    CHECK(kv_redis_address_parse(NULL, &a) == -EINVAL);

    /* The host at max - 1 (fits with its NUL), max (does not). */
    char text[KV_REDIS_HOST_BYTES_MAX + 16];
    memset(text, 'h', KV_REDIS_HOST_BYTES_MAX - 1);
    strcpy(text + KV_REDIS_HOST_BYTES_MAX - 1, ":25");
    CHECK(kv_redis_address_parse(text, &a) == 0);
    CHECK(strlen(a.host) == KV_REDIS_HOST_BYTES_MAX - 1);
    memset(text, 'h', KV_REDIS_HOST_BYTES_MAX);
    strcpy(text + KV_REDIS_HOST_BYTES_MAX, ":25");
    CHECK(kv_redis_address_parse(text, &a) == -EINVAL);

    /* The unix path: sun_path holds KV_REDIS_PATH_BYTES_MAX - 1 bytes. */
    char path[KV_REDIS_PATH_BYTES_MAX + 16] = "unix:/";
    memset(path + 6, 'p', KV_REDIS_PATH_BYTES_MAX - 2);
    path[5 + KV_REDIS_PATH_BYTES_MAX - 1] = '\0';
    CHECK(kv_redis_address_parse(path, &a) == 0);
    CHECK(strlen(a.path) == KV_REDIS_PATH_BYTES_MAX - 1);
    strcat(path, "p");
    CHECK(kv_redis_address_parse(path, &a) == -EINVAL);
}

static int
code(const char *text)
{
    return kv_redis_error_code(text, strlen(text));
}

static void
test_error_code(void)
{
    CHECK(code("ERR value is not an integer or out of range") == -EINVAL);
    CHECK(code("ERR value is not an integer or out of range script: 0123abcd, "
               "on @user_script:3.") == -EINVAL);
    CHECK(code("WRONGTYPE Operation against a key holding the wrong kind of value") == -EINVAL);
    CHECK(code("ERR increment or decrement would overflow") == -ERANGE);
    CHECK(code("LOADING Redis is loading the dataset in memory") == -EAGAIN);
    CHECK(code("OOM command not allowed when used memory > 'maxmemory'.") == -EAGAIN);
    CHECK(code("READONLY You can't write against a read only replica.") == -EAGAIN);
    CHECK(code("NOAUTH Authentication required.") == -EAGAIN);
    CHECK(code("") == -EAGAIN);
    CHECK(kv_redis_error_code(NULL, 0) == -EAGAIN);
    /* Only the bytes given count: the needle cut short is no match. */
    CHECK(kv_redis_error_code("ERR would overflow", 10) == -EAGAIN);
}

static void
test_match_pattern(void)
{
    char out[64];
    CHECK(kv_redis_match_pattern("toaster:", 8, out, sizeof(out)) == 9);
    CHECK_STR(out, "toaster:*");
    CHECK(kv_redis_match_pattern("a*b?c[d]e\\", 10, out, sizeof(out)) == 16);
    CHECK_STR(out, "a\\*b\\?c\\[d\\]e\\\\*");
    CHECK(kv_redis_match_pattern("", 0, out, sizeof(out)) == 1);
    CHECK_STR(out, "*");
    /* Room: "ab" needs 2 + "*" + NUL = 4 bytes. */
    CHECK(kv_redis_match_pattern("ab", 2, out, 4) == 3);
    CHECK(kv_redis_match_pattern("ab", 2, out, 3) == -ENOSPC);
    CHECK(kv_redis_match_pattern("a*", 2, out, 4) == -ENOSPC);
    CHECK(kv_redis_match_pattern("a*", 2, out, 5) == 4);
    CHECK_STR(out, "a\\**");
    /* The worst prefix fits the size kv_redis.c uses. */
    char prefix[KV_REDIS_PREFIX_BYTES_MAX];
    memset(prefix, '*', sizeof(prefix));
    char big[2 * KV_REDIS_PREFIX_BYTES_MAX + 2];
    CHECK(kv_redis_match_pattern(prefix, sizeof(prefix), big, sizeof(big)) ==
          2 * KV_REDIS_PREFIX_BYTES_MAX + 1);
}

static void
test_create_refuses(void)
{
    struct kv_redis_config config;
    struct kv *kv = NULL;
    kv_redis_config_defaults(&config);
    CHECK(config.timeout_ms == KV_REDIS_TIMEOUT_MS_DEFAULT);
    CHECK(strcmp(config.prefix, "toaster:") == 0);
    CHECK(kv_redis_create(&config, &kv) == -EINVAL); /* no address */
    config.address = "127.0.0.1";
    CHECK(kv_redis_create(&config, &kv) == -EINVAL);
    config.address = "127.0.0.1:1";

    struct kv_redis_config c = config;
    c.timeout_ms = 0;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c.timeout_ms = KV_REDIS_TIMEOUT_MS_CEILING + 1;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c = config;
    c.queue_max = 0;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c.queue_max = KV_REDIS_QUEUE_CEILING + 1;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c = config;
    c.db = KV_REDIS_DB_CEILING + 1;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c = config;
    c.cache_s = KV_REDIS_CACHE_S_CEILING + 1;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c = config;
    c.cache_entries = 0;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL);
    c.cache_s = 0; /* no cache: no entries needed */
    CHECK(kv_redis_create(&c, &kv) == 0);
    kv_destroy(&kv);
    CHECK(kv == NULL);

    char prefix[KV_REDIS_PREFIX_BYTES_MAX + 2];
    memset(prefix, 'p', KV_REDIS_PREFIX_BYTES_MAX + 1);
    prefix[KV_REDIS_PREFIX_BYTES_MAX + 1] = '\0';
    c = config;
    c.prefix = prefix;
    CHECK(kv_redis_create(&c, &kv) == -EINVAL); /* max + 1 */
    prefix[KV_REDIS_PREFIX_BYTES_MAX] = '\0';
    CHECK(kv_redis_create(&c, &kv) == 0); /* max */
    kv_destroy(&kv);
    c.prefix = "";
    CHECK(kv_redis_create(&c, &kv) == 0); /* no prefix is allowed */
    kv_destroy(&kv);
}

static uint64_t
now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Port 1 on loopback refuses: every call answers -EAGAIN at once, from a
 * waiting thread and from a non-waiting one, and the bounds still hold. */
static void
test_unreachable(void)
{
    struct kv_redis_config config;
    kv_redis_config_defaults(&config);
    config.address = "127.0.0.1:1";
    struct kv *kv = NULL;
    CHECK(kv_redis_create(&config, &kv) == 0);
    CHECK(strcmp(kv_backend_name(kv), "redis") == 0);
    uint8_t value[KV_VALUE_BYTES_MAX];
    size_t value_len = 0;
    uint64_t counter = 0;
    for (int may_wait = 0; may_wait <= 1; may_wait++) {
        kv_thread_may_wait(may_wait == 1);
        CHECK(kv_thread_can_wait() == (may_wait == 1));
        uint64_t start_ms = now_ms();
        CHECK(kv_set(kv, "k", 1, "v", 1, 10) == -EAGAIN);
        CHECK(kv_get(kv, "k", 1, value, sizeof(value), &value_len) == -EAGAIN);
        CHECK(kv_incr(kv, "n", 1, 10, &counter) == -EAGAIN);
        CHECK(kv_delete(kv, "k", 1) == -EAGAIN);
        CHECK(kv_count(kv) == 0);
        CHECK(now_ms() - start_ms < 50);
        /* Bounds come first, whatever the connection. */
        uint8_t key[KV_KEY_BYTES_MAX + 1];
        memset(key, 'k', sizeof(key));
        CHECK(kv_set(kv, key, sizeof(key), "v", 1, 0) == -EINVAL);
        CHECK(kv_set(kv, key, 0, "v", 1, 0) == -EINVAL);
        uint8_t big[KV_VALUE_BYTES_MAX + 1];
        memset(big, 'v', sizeof(big));
        CHECK(kv_set(kv, "k", 1, big, sizeof(big), 0) == -EINVAL);
    }
    kv_thread_may_wait(false);
    struct kv_redis_stats stats;
    CHECK(kv_redis_stats(kv, &stats) == 0);
    CHECK(stats.is_connected == 0);
    CHECK(stats.refused >= 6);
    CHECK(stats.requests == 0);
    kv_destroy(&kv);

    CHECK(kv_embedded_create(64, NULL, NULL, &kv) == 0);
    CHECK(kv_redis_stats(kv, &stats) == -EINVAL);
    kv_destroy(&kv);
}

static void *
thread_can_wait(void *arg)
{
    *(int *)arg = kv_thread_can_wait() ? 1 : 0;
    return NULL;
}

/* The flag is per thread and off in a new one, whatever its creator said. */
static void
test_thread_flag(void)
{
    kv_thread_may_wait(true);
    int seen = -1;
    pthread_t id;
    CHECK(pthread_create(&id, NULL, thread_can_wait, &seen) == 0);
    CHECK(pthread_join(id, NULL) == 0);
    CHECK(seen == 0);
    CHECK(kv_thread_can_wait());
    kv_thread_may_wait(false);
    CHECK(!kv_thread_can_wait());
}

int
main(void)
{
    test_thread_flag();
    test_address();
    test_error_code();
    test_match_pattern();
    test_create_refuses();
    test_unreachable();
    UNIT_DONE();
}
