/*
 * core/kv_redis.h - the key-value store (core/kv.h) kept in a Redis server,
 * so greylisting triplets, rate counters, Bayes tokens and postscreen's
 * memory can be shared by several toaster machines.
 *
 * One I/O thread per store owns the connection (hiredis); callers hand it
 * requests through a bounded queue and never touch the socket. Two kinds
 * of caller (kv_thread_may_wait):
 *
 *  - a thread that may wait (workers) sends the command and waits for the
 *    reply up to timeout_ms, then gets -EAGAIN;
 *  - a thread that may not (reactors) never waits: set and delete are
 *    queued and answer 0 at once (delete never says -ENOENT then); get
 *    answers from a bounded local cache of keys recently read or written
 *    through this store (never older than cache_s, never past the key's
 *    Redis TTL; keys known absent at most KV_REDIS_ABSENT_S_MAX), else
 *    -EAGAIN with a fetch queued so that a later get finds the answer in
 *    the cache; incr answers the cached counter plus one (a lower bound
 *    when other machines count too) and queues the INCR, whose reply puts
 *    the true value in the cache, or -EAGAIN with the INCR queued all the
 *    same; count answers the last count known and queues a new one.
 *
 * Waiting callers never read the cache: they get Redis's answer or -EAGAIN.
 * While Redis is unreachable every call fails at once with -EAGAIN; the
 * I/O thread reconnects by itself with backoff. Keys are stored as
 * prefix + key, binary-safe. Counters are Redis integers: at most
 * INT64_MAX (the embedded backend's UINT64_MAX is out of reach: -ERANGE).
 */
#ifndef TOASTER_CORE_KV_REDIS_H
#define TOASTER_CORE_KV_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

#define KV_REDIS_PREFIX_BYTES_MAX 64
#define KV_REDIS_HOST_BYTES_MAX 256
#define KV_REDIS_PATH_BYTES_MAX 108 /* sun_path */
#define KV_REDIS_PASSWORD_BYTES_MAX 256

#define KV_REDIS_TIMEOUT_MS_DEFAULT 100u
#define KV_REDIS_TIMEOUT_MS_CEILING 10000u
#define KV_REDIS_CONNECT_TIMEOUT_MS_DEFAULT 1000u
#define KV_REDIS_QUEUE_DEFAULT 1024u
#define KV_REDIS_QUEUE_CEILING 65536u
#define KV_REDIS_CACHE_ENTRIES_DEFAULT 16384u
#define KV_REDIS_CACHE_S_DEFAULT 300u
/* Keys known absent are believed at most this long (and at most cache_s):
 * another machine may create them any moment. */
#define KV_REDIS_ABSENT_S_MAX 10u
#define KV_REDIS_CACHE_S_CEILING 3600u
#define KV_REDIS_DB_CEILING 65535u

/* Where Redis listens: "host:port", "[v6addr]:port" or "unix:/path". */
struct kv_redis_address {
    char host[KV_REDIS_HOST_BYTES_MAX]; /* empty for a unix socket */
    uint16_t port;
    char path[KV_REDIS_PATH_BYTES_MAX]; /* empty for TCP */
};

struct kv_redis_config {
    const char *address;         /* see struct kv_redis_address; required */
    const char *password;        /* NULL or "": no AUTH */
    uint32_t db;                 /* SELECT this database when not 0 */
    const char *prefix;          /* before every key; NULL: "toaster:" */
    uint32_t timeout_ms;         /* a waiting caller's bound per call */
    uint32_t connect_timeout_ms; /* connect + AUTH/SELECT/PING */
    uint32_t queue_max;          /* requests queued or in flight */
    uint32_t cache_entries;      /* local cache for callers that may not wait */
    uint32_t cache_s;            /* longest a cached answer is believed; 0: no cache */
};

/* What the I/O thread has done since creation (monotonic counters), for
 * /metrics, and whether it is connected now. */
struct kv_redis_stats {
    uint64_t requests;         /* calls that reached the queue */
    uint64_t commands;         /* Redis commands sent */
    uint64_t errors;           /* error replies and broken connections' requests */
    uint64_t timeouts;         /* waiting callers that gave up after timeout_ms */
    uint64_t refused;          /* -EAGAIN at once: down or queue full */
    uint64_t connects;         /* successful connections (the first included) */
    uint64_t connect_failures; /* connects or handshakes that failed */
    uint64_t disconnects;      /* connections lost after they worked */
    uint64_t cache_hits;       /* non-waiting gets/incrs answered from the cache */
    uint64_t cache_misses;     /* non-waiting gets/incrs that started a fetch */
    uint64_t is_connected;     /* 1 or 0 now */
};

/* Fill config with the defaults (no address). */
void kv_redis_config_defaults(struct kv_redis_config *config);

/* Parse "host:port", "[v6]:port" or "unix:/path" into *address_out.
 * Returns 0 or -EINVAL (empty, no port, port 0 or above 65535, a name or
 * path too long, a relative unix path). Pure; for the config check too. */
int kv_redis_address_parse(const char *text, struct kv_redis_address *address_out);

/* Create the store and its I/O thread, which connects in the background:
 * until it has, every call returns -EAGAIN. Strings in config are copied.
 * Returns 0 and sets *kv_out, -EINVAL (bad address, prefix, password or a
 * number out of range), -ENOMEM, or a pthread error. */
int kv_redis_create(const struct kv_redis_config *config, struct kv **kv_out);

/* kv_destroy on a Redis store first sends what is queued (the non-waiting
 * callers' last writes) if it is connected, each batch of up to 64 bounded
 * by the reply timeout (4 x timeout_ms, at least 1 s), then closes. */

/* The counters of a Redis store. Returns 0, or -EINVAL if kv is another
 * backend. Any thread. */
int kv_redis_stats(struct kv *kv, struct kv_redis_stats *stats_out);

/* Map a Redis error reply's text to what kv callers get: -EINVAL for a
 * value that is not a counter or a key of another type, -ERANGE for an
 * increment that would overflow, -EAGAIN for anything else (the server
 * is loading, out of memory, read-only...). Pure. */
int kv_redis_error_code(const char *text, size_t text_len);

/* Write pattern for SCAN MATCH: prefix with the glob characters * ? [ ] \
 * escaped, then "*". Returns the length, or -ENOSPC if pattern_bytes is
 * too small. Pure. */
int kv_redis_match_pattern(const char *prefix, size_t prefix_len, char *pattern_out,
                           size_t pattern_bytes);

#endif
