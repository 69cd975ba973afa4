/*
 * core/log.h - one line per event on stderr, in the syslog shape operators
 * grep for: "toasterd[pid]: 4F3A2B9C: from=<a@b>, size=1234, nrcpt=2".
 *
 * Each line goes out whole within one write(2), so lines from different
 * threads never interleave. Safe from any thread. A reactor thread
 * collects its info lines and writes them once per loop turn
 * (log_buffer_begin, log_flush): one write for a turn's hundred messages,
 * not one each. Errors and warnings go out at once, after what was held.
 */
#ifndef TOASTER_CORE_LOG_H
#define TOASTER_CORE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* Set once at start-up, before threads exist. */
void log_setup(enum log_level level, bool with_timestamps);

bool log_enabled(enum log_level level);

/* From now on this thread holds its info and debug lines until log_flush
 * (or until the buffer is full). */
void log_buffer_begin(void);

/* Write what this thread holds, in one write(2). */
void log_flush(void);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                               \
    do {                                                                             \
        if (log_enabled(LOG_LEVEL_DEBUG)) {                                          \
            log_write(LOG_LEVEL_DEBUG, __VA_ARGS__);                                 \
        }                                                                            \
    } while (0)

#endif
