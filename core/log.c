/*
 * core/log.c - format a log line and write it with a single write(2).
 *
 * Lines are bounded (LOG_TEXT_BYTES of text, LOG_LINE_BYTES_MAX in all);
 * longer messages are cut and marked with "...". Control bytes from peers
 * are escaped so a client cannot forge log lines. The level, format and
 * timestamp switch are read with relaxed atomics: a reload changes them
 * while every thread logs.
 */
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The text of one event before escaping. */
#define LOG_TEXT_BYTES 2048
/* Per buffering thread; a write of at most PIPE_BUF bytes reaches a pipe
 * whole, so held lines never interleave with another thread's. */
#define LOG_BUFFER_BYTES PIPE_BUF

static int log_level_current = LOG_LEVEL_INFO;
static int log_format_current = LOG_FORMAT_PLAIN;
static bool log_timestamps = true;
static long log_pid;

static __thread bool  log_is_buffering;
static __thread char  log_buffer[LOG_BUFFER_BYTES];
static __thread size_t log_buffer_len;

void
log_setup(enum log_level level, bool with_timestamps)
{
    log_set_level(level);
    __atomic_store_n(&log_timestamps, with_timestamps, __ATOMIC_RELAXED);
    log_pid = (long)getpid();
}

void
log_set_level(enum log_level level)
{
    __atomic_store_n(&log_level_current, (int)level, __ATOMIC_RELAXED);
}

void
log_set_format(enum log_format format, bool with_timestamps)
{
    __atomic_store_n(&log_format_current, (int)format, __ATOMIC_RELAXED);
    __atomic_store_n(&log_timestamps, with_timestamps, __ATOMIC_RELAXED);
}

/* One unsigned decimal ending at a stop byte; *p moves past it. */
static bool
log_parse_decimal(const char **p, char stop, unsigned long long *value_out)
{
    const char *s = *p;
    unsigned long long value = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        unsigned long long digit = (unsigned long long)(*s - '0');
        if (digits >= 20 || value > (~0ULL - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
    }
    if (digits == 0 || *s != stop) {
        return false;
    }
    *p = s;
    *value_out = value;
    return true;
}

bool
log_journal_stream_matches(const char *journal_stream, unsigned long long dev,
                           unsigned long long ino)
{
    if (journal_stream == NULL) {
        return false;
    }
    const char *p = journal_stream;
    unsigned long long stream_dev = 0;
    unsigned long long stream_ino = 0;
    if (!log_parse_decimal(&p, ':', &stream_dev)) {
        return false;
    }
    p++;
    if (!log_parse_decimal(&p, '\0', &stream_ino)) {
        return false;
    }
    return stream_dev == dev && stream_ino == ino;
}

bool
log_stderr_is_journal(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    struct stat st;
    if (stream == NULL || fstat(STDERR_FILENO, &st) != 0) {
        return false;
    }
    return log_journal_stream_matches(stream, (unsigned long long)st.st_dev,
                                      (unsigned long long)st.st_ino);
}

size_t
log_line_format(enum log_format format, const char *timestamp, long pid, enum log_level level,
                const char *text, size_t text_len, bool is_cut, char *out, size_t out_bytes)
{
    static const char *const level_tags[] = { "error: ", "warning: ", "", "debug: " };
    static const char *const priorities[] = { "<3>", "<4>", "<6>", "<7>" };
    if ((unsigned)level > LOG_LEVEL_DEBUG) {
        level = LOG_LEVEL_ERROR;
    }
    if (out_bytes > LOG_LINE_BYTES_MAX) {
        out_bytes = LOG_LINE_BYTES_MAX;
    }
    int n;
    if (format == LOG_FORMAT_JOURNAL) {
        n = snprintf(out, out_bytes, "%s%s", priorities[level], level_tags[level]);
    } else {
        n = snprintf(out, out_bytes, "%s%stoasterd[%ld]: %s", timestamp ? timestamp : "",
                     timestamp ? " " : "", pid, level_tags[level]);
    }
    /* The head, then room for the newline at least. */
    if (n < 0 || (size_t)n + 1 >= out_bytes) {
        return 0;
    }
    size_t len = (size_t)n;
    /* Reserve "..." and the newline: 4 bytes; an escape takes 4. */
    size_t text_end = out_bytes - 4;
    size_t i = 0;
    for (; i < text_len; i++) {
        unsigned char c = (unsigned char)text[i];
        bool is_control = c < 0x20 || c == 0x7f;
        size_t need = is_control ? 4 : 1;
        if (len + need > text_end) {
            break;
        }
        if (is_control) {
            static const char hex[] = "0123456789abcdef";
            out[len++] = '\\';
            out[len++] = 'x';
            out[len++] = hex[c >> 4];
            out[len++] = hex[c & 0xf];
        } else {
            out[len++] = (char)c;
        }
    }
    if ((is_cut || i < text_len) && len + 4 <= out_bytes) {
        memcpy(out + len, "...", 3);
        len += 3;
    }
    out[len++] = '\n';
    return len;
}

/* stderr is where the operator (or systemd) collects our lines; if it is
 * gone there is nobody left to tell, so a failed write is dropped. */
static void
log_output(const char *bytes, size_t len)
{
    while (len > 0) {
        ssize_t written = write(STDERR_FILENO, bytes, len);
        if (written < 0 && errno == EINTR) {
            continue;
        }
        if (written <= 0) {
            return;
        }
        bytes += written;
        len -= (size_t)written;
    }
}

void
log_buffer_begin(void)
{
    log_is_buffering = true;
    log_buffer_len = 0;
}

void
log_flush(void)
{
    if (log_buffer_len > 0) {
        log_output(log_buffer, log_buffer_len);
        log_buffer_len = 0;
    }
}

bool
log_enabled(enum log_level level)
{
    return (int)level <= __atomic_load_n(&log_level_current, __ATOMIC_RELAXED);
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char raw[LOG_TEXT_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t raw_len = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;

    enum log_format format =
        (enum log_format)__atomic_load_n(&log_format_current, __ATOMIC_RELAXED);
    char stamp[40];
    const char *timestamp = NULL;
    if (format == LOG_FORMAT_PLAIN && __atomic_load_n(&log_timestamps, __ATOMIC_RELAXED)) {
        struct timeval tv;
        (void)gettimeofday(&tv, NULL);
        struct tm tm;
        (void)gmtime_r(&tv.tv_sec, &tm);
        size_t len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        (void)snprintf(stamp + len, sizeof(stamp) - len, ".%03ldZ", (long)(tv.tv_usec / 1000));
        timestamp = stamp;
    }
    char line[LOG_LINE_BYTES_MAX];
    size_t len = log_line_format(format, timestamp, log_pid ? log_pid : (long)getpid(), level,
                                 raw, raw_len, (size_t)n >= sizeof(raw), line, sizeof(line));
    if (len == 0) {
        return;
    }
    if (!log_is_buffering) {
        log_output(line, len);
        return;
    }
    if (log_buffer_len + len > sizeof(log_buffer)) {
        log_flush();
    }
    if (level <= LOG_LEVEL_WARNING || len > sizeof(log_buffer)) {
        log_flush();
        log_output(line, len);
        return;
    }
    memcpy(log_buffer + log_buffer_len, line, len);
    log_buffer_len += len;
}
