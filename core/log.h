/*
 * core/log.h - one line per event on stderr, in the syslog shape operators
 * grep for: "toasterd[pid]: 4F3A2B9C: from=<a@b>, size=1234, nrcpt=2".
 *
 * The format is stable (README "Logs"): two shapes, chosen at start.
 *   plain:   "2026-12-05T06:41:26.123Z toasterd[4242]: warning: text"
 *            (the timestamp only with log_timestamps = yes)
 *   journal: "<4>warning: text" - a syslog priority journald reads
 *            (<3> error, <4> warning, <6> info, <7> debug), no timestamp and
 *            no "toasterd[pid]: ", which journald records by itself.
 * Level words: "error: ", "warning: ", none for info, "debug: ". Text about
 * one message starts with its queue id: "4F3A2B9C0D1E2F30: to=<...>".
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
#include <stddef.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

enum log_format {
    LOG_FORMAT_PLAIN,   /* [timestamp ]toasterd[pid]: level: text */
    LOG_FORMAT_JOURNAL, /* <priority>level: text */
};

/* A formatted line is at most this long, newline included. */
#define LOG_LINE_BYTES_MAX 4096u

/* Set once at start-up, before threads exist. */
void log_setup(enum log_level level, bool with_timestamps);

/* Any thread, any time (a reload): later lines use the new settings. */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format, bool with_timestamps);

/* Whether stderr is a journald stream: $JOURNAL_STREAM ("DEV:INO", set by
 * systemd for StandardError=journal) names stderr's device and inode. */
bool log_stderr_is_journal(void);

/* Whether journal_stream ("DEV:INO", decimal) names dev and ino. NULL, ""
 * or anything malformed is false. */
bool log_journal_stream_matches(const char *journal_stream, unsigned long long dev,
                                unsigned long long ino);

/* Format one line into out (at most out_bytes, LOG_LINE_BYTES_MAX at
 * most used): the head for format and level, then text[0..text_len) with
 * control bytes escaped as \xNN, "..." when is_cut or when it did not fit,
 * and "\n". timestamp ("2026-...Z") is used by LOG_FORMAT_PLAIN only, and
 * only when not NULL. Returns the length written (out is not
 * NUL-terminated); 0 when out_bytes is too small for a head and a newline. */
size_t log_line_format(enum log_format format, const char *timestamp, long pid,
                       enum log_level level, const char *text, size_t text_len, bool is_cut,
                       char *out, size_t out_bytes);

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
