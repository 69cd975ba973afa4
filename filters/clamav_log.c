/*
 * filters/clamav_log.c - the once-per-kind logger of the ClamAV filter (see
 * clamav_log.h).
 *
 * Each kind keeps two atomics: how many times it happened, and when it was
 * last logged. The thread that wins the compare-and-swap of the second logs;
 * the others only count. No lock, no allocation: any thread, including
 * libclamav's message callback inside a scan.
 * Limits: CLAMAV_LOG_KINDS slots, one line per kind per CLAMAV_LOG_INTERVAL_MS.
 */
#include "filters/clamav_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "core/log.h"

#define CLAMAV_LOG_LINE_BYTES 512

struct clamav_log_slot {
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t logged_count; /* count when it was last logged */
    atomic_uint_fast64_t logged_ms;    /* 0: never logged */
};

static struct clamav_log_slot clamav_log_slots[CLAMAV_LOG_KINDS];

static uint64_t
clamav_log_now_ms(void)
{
    struct timespec now;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u + 1u;
}

void
clamav_log_limited(uint32_t kind, const char *fmt, ...)
{
    if (kind >= CLAMAV_LOG_KINDS) {
        kind = CLAMAV_LOG_KINDS - 1;
    }
    struct clamav_log_slot *slot = &clamav_log_slots[kind];
    uint64_t count = atomic_fetch_add(&slot->count, 1) + 1;
    uint64_t now_ms = clamav_log_now_ms();
    uint64_t logged_ms = atomic_load(&slot->logged_ms);
    if (logged_ms != 0 && now_ms - logged_ms < CLAMAV_LOG_INTERVAL_MS) {
        return;
    }
    if (!atomic_compare_exchange_strong(&slot->logged_ms, &logged_ms, now_ms)) {
        return; /* another thread logs this interval */
    }
    uint64_t before = atomic_exchange(&slot->logged_count, count);
    uint64_t unlogged = count - before - 1; /* occurrences since the last line */

    char line[CLAMAV_LOG_LINE_BYTES];
    va_list args;
    va_start(args, fmt);
    int len = vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    if (len < 0) {
        line[0] = '\0';
    }
    if (unlogged > 0) {
        log_warning("clamav: %s (%llu more like it since the last report)", line,
                    (unsigned long long)unlogged);
    } else {
        log_warning("clamav: %s", line);
    }
}

uint64_t
clamav_log_count(uint32_t kind)
{
    if (kind >= CLAMAV_LOG_KINDS) {
        kind = CLAMAV_LOG_KINDS - 1;
    }
    return atomic_load(&clamav_log_slots[kind].count);
}
