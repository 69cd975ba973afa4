/*
 * filters/clamav_log.h - log a ClamAV failure once per kind, not once per
 * message: the first occurrence of a kind is logged at once, later ones are
 * counted and summed up in one line at most every CLAMAV_LOG_INTERVAL_MS.
 * A storm of broken attachments (or a database that will not load while
 * mail keeps arriving) then costs a few lines a minute. Any thread.
 */
#ifndef TOASTER_FILTERS_CLAMAV_LOG_H
#define TOASTER_FILTERS_CLAMAV_LOG_H

#include <stdint.h>

#define CLAMAV_LOG_INTERVAL_MS 60000u

/* The kinds that are limited. Scan errors have one kind per cl_error_t. */
/* libclamav's own messages are told apart by a hash of their text up to the
 * first ':' (the function that speaks), in this many slots per severity. */
#define CLAMAV_LOG_LIBCLAMAV_SLOTS 8u

enum clamav_log_kind {
    CLAMAV_LOG_NOT_READY = 0, /* a scan found no engine loaded */
    CLAMAV_LOG_LIBCLAMAV_ERROR_FIRST = 1,
    CLAMAV_LOG_LIBCLAMAV_WARNING_FIRST = CLAMAV_LOG_LIBCLAMAV_ERROR_FIRST + CLAMAV_LOG_LIBCLAMAV_SLOTS,
    CLAMAV_LOG_SCAN_ERROR_FIRST = CLAMAV_LOG_LIBCLAMAV_WARNING_FIRST + CLAMAV_LOG_LIBCLAMAV_SLOTS,
    /* + cl_error_t of the scan */
};

#define CLAMAV_LOG_SCAN_ERROR_KINDS 64u
#define CLAMAV_LOG_KINDS (CLAMAV_LOG_SCAN_ERROR_FIRST + CLAMAV_LOG_SCAN_ERROR_KINDS)

/* One occurrence of `kind` (below CLAMAV_LOG_KINDS; larger kinds share the
 * last slot). Logs `fmt` as a warning if this kind was not logged in the last
 * interval, with the count of occurrences that went unlogged since. */
void clamav_log_limited(uint32_t kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Occurrences of `kind` so far in this process (tests). */
uint64_t clamav_log_count(uint32_t kind);

#endif
