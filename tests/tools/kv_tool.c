/*
 * tests/tools/kv_tool.c - drive the key-value store (core/kv.h) from a
 * script on stdin, against Redis (core/kv_redis.h) or the embedded
 * backend; for tests/integration/test_kv_redis.py and for operators
 * checking a Redis address.
 *
 *   kv_tool (--redis ADDRESS | --embedded ENTRIES) [--prefix P] [--db N]
 *           [--password P] [--timeout-ms N] [--connect-timeout-ms N]
 *           [--queue N] [--cache-entries N] [--cache-s N] [--nowait]
 *
 * One command a line; one answer line each, flushed at once so a test can
 * converse with it:
 *
 *   set KEY VALUE TTL_S  ->  set 0 us=N
 *   get KEY              ->  get 0 VALUE us=N      get -ENOENT us=N
 *   incr KEY TTL_S       ->  incr 0 VALUE us=N
 *   del KEY              ->  del 0 us=N
 *   count                ->  count N us=N
 *   wait | nowait        ->  the thread's kv_thread_may_wait (default wait
 *                            unless --nowait); answers "mode wait"
 *   sleep MS             ->  sleep MS
 *   connected MS         ->  connected 1|0 (polls up to MS for a connection)
 *   stats                ->  stats requests=N commands=N ... is_connected=N
 *   hammer THREADS N KEY TTL_S -> THREADS threads (that may wait) each incr
 *                            KEY N times: "hammer ok=N eagain=N other=N
 *                            max=N us=N" (max: the largest value seen)
 *
 * KEY and VALUE are escaped: \xHH for any byte, \\ for a backslash, and
 * "-" alone for the empty value; answers escape the same way. us= is the
 * call's duration in microseconds. Exit 0 at end of input, 2 on bad usage
 * (the line "error ..." for a bad script line, which does not stop it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kv.h"
#include "core/kv_redis.h"

#define LINE_BYTES_MAX 4096
#define FIELD_BYTES_MAX 1024 /* above the kv bounds: the store must refuse them */
#define FIELDS_MAX 5
#define HAMMER_THREADS_MAX 64

int main(int argc, char **argv);

struct field {
    uint8_t bytes[FIELD_BYTES_MAX];
    size_t len;
};

static uint64_t
now_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Unescape one token into field. Returns 0 or -EINVAL. */
static int
field_parse(const char *token, struct field *field)
{
    field->len = 0;
    if (strcmp(token, "-") == 0) {
        return 0;
    }
    for (size_t i = 0; token[i] != '\0'; i++) {
        if (field->len >= sizeof(field->bytes)) {
            return -EINVAL;
        }
        uint8_t byte = (uint8_t)token[i];
        if (token[i] == '\\') {
            if (token[i + 1] == '\\') {
                i++;
            } else if (token[i + 1] == 'x' && hex_digit(token[i + 2]) >= 0 &&
                       hex_digit(token[i + 3]) >= 0) {
                byte = (uint8_t)(hex_digit(token[i + 2]) * 16 + hex_digit(token[i + 3]));
                i += 3;
            } else {
                return -EINVAL;
            }
        }
        field->bytes[field->len++] = byte;
    }
    return 0;
}

static void
print_escaped(const uint8_t *bytes, size_t len)
{
    if (len == 0) {
        fputs("-", stdout);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] == '\\') {
            fputs("\\\\", stdout);
        } else if (bytes[i] > ' ' && bytes[i] < 0x7f && !(len == 1 && bytes[i] == '-')) {
            putchar(bytes[i]);
        } else {
            printf("\\x%02x", bytes[i]);
        }
    }
}

static const char *
rc_name(int rc)
{
    switch (rc) {
    case 0:
        return "0";
    case -ENOENT:
        return "-ENOENT";
    case -EINVAL:
        return "-EINVAL";
    case -EAGAIN:
        return "-EAGAIN";
    case -ENOSPC:
        return "-ENOSPC";
    case -ERANGE:
        return "-ERANGE";
    default:
        return "-E?";
    }
}

static bool
parse_u32(const char *text, uint32_t *value_out)
{
    char *end = NULL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value > UINT32_MAX || text[0] == '-') {
        return false;
    }
    *value_out = (uint32_t)value;
    return true;
}

static void
print_stats(struct kv *kv)
{
    struct kv_redis_stats stats;
    if (kv_redis_stats(kv, &stats) != 0) {
        printf("stats none\n");
        return;
    }
    printf("stats requests=%" PRIu64 " commands=%" PRIu64 " errors=%" PRIu64 " timeouts=%" PRIu64
           " refused=%" PRIu64 " connects=%" PRIu64 " connect_failures=%" PRIu64
           " disconnects=%" PRIu64 " cache_hits=%" PRIu64 " cache_misses=%" PRIu64
           " is_connected=%" PRIu64 "\n",
           stats.requests, stats.commands, stats.errors, stats.timeouts, stats.refused,
           stats.connects, stats.connect_failures, stats.disconnects, stats.cache_hits,
           stats.cache_misses, stats.is_connected);
}

struct hammer {
    struct kv *kv;
    const struct field *key;
    uint32_t count;
    uint32_t ttl_s;
    uint64_t ok;
    uint64_t eagain;
    uint64_t other;
    uint64_t max;
};

static void *
hammer_main(void *arg)
{
    struct hammer *h = arg;
    kv_thread_may_wait(true);
    for (uint32_t i = 0; i < h->count; i++) {
        uint64_t value = 0;
        int rc = kv_incr(h->kv, h->key->bytes, h->key->len, h->ttl_s, &value);
        if (rc == 0) {
            h->ok++;
            h->max = value > h->max ? value : h->max;
        } else if (rc == -EAGAIN) {
            h->eagain++;
        } else {
            h->other++;
        }
    }
    return NULL;
}

static void
run_hammer(struct kv *kv, uint32_t threads, uint32_t count, const struct field *key, uint32_t ttl_s)
{
    static struct hammer hammers[HAMMER_THREADS_MAX];
    pthread_t ids[HAMMER_THREADS_MAX];
    uint64_t start_us = now_us();
    uint32_t started = 0;
    for (; started < threads; started++) {
        hammers[started] = (struct hammer){.kv = kv, .key = key, .count = count, .ttl_s = ttl_s};
        if (pthread_create(&ids[started], NULL, hammer_main, &hammers[started]) != 0) {
            break;
        }
    }
    struct hammer total = {0};
    for (uint32_t i = 0; i < started; i++) {
        (void)pthread_join(ids[i], NULL); /* a thread we created: cannot fail */
        total.ok += hammers[i].ok;
        total.eagain += hammers[i].eagain;
        total.other += hammers[i].other;
        total.max = hammers[i].max > total.max ? hammers[i].max : total.max;
    }
    printf("hammer ok=%" PRIu64 " eagain=%" PRIu64 " other=%" PRIu64 " max=%" PRIu64
           " threads=%" PRIu32 " us=%" PRIu64 "\n",
           total.ok, total.eagain, total.other, total.max, started, now_us() - start_us);
}

static bool
is_connected(struct kv *kv)
{
    struct kv_redis_stats stats;
    return kv_redis_stats(kv, &stats) == 0 && stats.is_connected == 1;
}

/* Run one script line. */
static void
run_line(struct kv *kv, char *line)
{
    char *fields_text[FIELDS_MAX];
    size_t count = 0;
    char *save = NULL;
    for (char *token = strtok_r(line, " \t\r\n", &save); token != NULL;
         token = strtok_r(NULL, " \t\r\n", &save)) {
        if (count == FIELDS_MAX) {
            printf("error too many fields\n");
            return;
        }
        fields_text[count++] = token;
    }
    if (count == 0 || fields_text[0][0] == '#') {
        return;
    }
    const char *cmd = fields_text[0];
    static struct field key;
    static struct field value;
    uint32_t number = 0;
    if (count >= 2 && strcmp(cmd, "count") != 0 && strcmp(cmd, "sleep") != 0 &&
        strcmp(cmd, "connected") != 0 && strcmp(cmd, "hammer") != 0 &&
        field_parse(fields_text[1], &key) != 0) {
        printf("error bad key\n");
        return;
    }
    uint64_t start_us = now_us();
    if (strcmp(cmd, "set") == 0 && count == 4 && field_parse(fields_text[2], &value) == 0 &&
        parse_u32(fields_text[3], &number)) {
        int rc = kv_set(kv, key.bytes, key.len, value.bytes, value.len, number);
        printf("set %s us=%" PRIu64 "\n", rc_name(rc), now_us() - start_us);
    } else if (strcmp(cmd, "get") == 0 && count == 2) {
        uint8_t out[KV_VALUE_BYTES_MAX];
        size_t out_len = 0;
        int rc = kv_get(kv, key.bytes, key.len, out, sizeof(out), &out_len);
        uint64_t elapsed_us = now_us() - start_us;
        printf("get %s", rc_name(rc));
        if (rc == 0) {
            putchar(' ');
            print_escaped(out, out_len);
        }
        printf(" us=%" PRIu64 "\n", elapsed_us);
    } else if (strcmp(cmd, "incr") == 0 && count == 3 && parse_u32(fields_text[2], &number)) {
        uint64_t counter = 0;
        int rc = kv_incr(kv, key.bytes, key.len, number, &counter);
        uint64_t elapsed_us = now_us() - start_us;
        printf("incr %s", rc_name(rc));
        if (rc == 0) {
            printf(" %" PRIu64, counter);
        }
        printf(" us=%" PRIu64 "\n", elapsed_us);
    } else if (strcmp(cmd, "del") == 0 && count == 2) {
        int rc = kv_delete(kv, key.bytes, key.len);
        printf("del %s us=%" PRIu64 "\n", rc_name(rc), now_us() - start_us);
    } else if (strcmp(cmd, "count") == 0 && count == 1) {
        size_t n = kv_count(kv);
        printf("count %zu us=%" PRIu64 "\n", n, now_us() - start_us);
    } else if ((strcmp(cmd, "wait") == 0 || strcmp(cmd, "nowait") == 0) && count == 1) {
        kv_thread_may_wait(strcmp(cmd, "wait") == 0);
        printf("mode %s\n", cmd);
    } else if (strcmp(cmd, "sleep") == 0 && count == 2 && parse_u32(fields_text[1], &number)) {
        struct timespec ts = {.tv_sec = number / 1000u,
                              .tv_nsec = (long)(number % 1000u) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        printf("sleep %" PRIu32 "\n", number);
    } else if (strcmp(cmd, "connected") == 0 && count == 2 && parse_u32(fields_text[1], &number)) {
        uint64_t deadline_us = now_us() + (uint64_t)number * 1000u;
        while (!is_connected(kv) && now_us() < deadline_us) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000000};
            (void)nanosleep(&ts, NULL);
        }
        printf("connected %d\n", is_connected(kv) ? 1 : 0);
    } else if (strcmp(cmd, "hammer") == 0 && count == 5 && parse_u32(fields_text[1], &number) &&
               number > 0 && number <= HAMMER_THREADS_MAX &&
               field_parse(fields_text[3], &key) == 0) {
        uint32_t per_thread = 0;
        uint32_t ttl_s = 0;
        if (parse_u32(fields_text[2], &per_thread) && parse_u32(fields_text[4], &ttl_s)) {
            run_hammer(kv, number, per_thread, &key, ttl_s);
        } else {
            printf("error bad hammer\n");
        }
    } else if (strcmp(cmd, "stats") == 0 && count == 1) {
        print_stats(kv);
    } else {
        printf("error bad command\n");
    }
}

static void
usage(void)
{
    fputs("usage: kv_tool (--redis ADDRESS | --embedded ENTRIES) [--prefix P] [--db N]\n"
          "               [--password P] [--timeout-ms N] [--connect-timeout-ms N]\n"
          "               [--queue N] [--cache-entries N] [--cache-s N] [--nowait]\n",
          stderr);
}

int
main(int argc, char **argv)
{
    struct kv_redis_config config;
    kv_redis_config_defaults(&config);
    uint32_t embedded_entries = 0;
    bool may_wait = true;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        bool is_ok = true;
        if (strcmp(arg, "--nowait") == 0) {
            may_wait = false;
            continue;
        }
        if (next == NULL) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(arg, "--redis") == 0) {
            config.address = next;
        } else if (strcmp(arg, "--embedded") == 0) {
            is_ok = parse_u32(next, &embedded_entries);
        } else if (strcmp(arg, "--prefix") == 0) {
            config.prefix = next;
        } else if (strcmp(arg, "--password") == 0) {
            config.password = next;
        } else if (strcmp(arg, "--db") == 0) {
            is_ok = parse_u32(next, &config.db);
        } else if (strcmp(arg, "--timeout-ms") == 0) {
            is_ok = parse_u32(next, &config.timeout_ms);
        } else if (strcmp(arg, "--connect-timeout-ms") == 0) {
            is_ok = parse_u32(next, &config.connect_timeout_ms);
        } else if (strcmp(arg, "--queue") == 0) {
            is_ok = parse_u32(next, &config.queue_max);
        } else if (strcmp(arg, "--cache-entries") == 0) {
            is_ok = parse_u32(next, &config.cache_entries);
        } else if (strcmp(arg, "--cache-s") == 0) {
            is_ok = parse_u32(next, &config.cache_s);
        } else {
            is_ok = false;
        }
        if (!is_ok) {
            usage();
            return 2;
        }
    }
    if ((config.address == NULL) == (embedded_entries == 0)) {
        usage();
        return 2;
    }
    /* toasterd ignores SIGPIPE too: a Redis gone mid-write is an error, not a death. */
    (void)signal(SIGPIPE, SIG_IGN);
    struct kv *kv = NULL;
    int rc = config.address != NULL ? kv_redis_create(&config, &kv)
                                    : kv_embedded_create(embedded_entries, NULL, NULL, &kv);
    if (rc != 0) {
        fprintf(stderr, "kv_tool: cannot create the store: %s\n", strerror(-rc));
        return 2;
    }
    kv_thread_may_wait(may_wait);
    static char line[LINE_BYTES_MAX];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        run_line(kv, line);
        (void)fflush(stdout);
    }
    kv_destroy(&kv);
    return 0;
}
