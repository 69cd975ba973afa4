/*
 * core/log.c - format a log line and write it with a single write(2).
 *
 * Lines are bounded (LOG_LINE_BYTES); longer messages are cut and marked
 * with "...". Control bytes from peers are escaped so a client cannot forge
 * log lines.
 */
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_BYTES 2048
/* Per buffering thread; a write of at most PIPE_BUF bytes reaches a pipe
 * whole, so held lines never interleave with another thread's. */
#define LOG_BUFFER_BYTES PIPE_BUF

static enum log_level log_level_current = LOG_LEVEL_INFO;
static bool log_timestamps = true;
static long log_pid;

static __thread bool  log_is_buffering;
static __thread char  log_buffer[LOG_BUFFER_BYTES];
static __thread size_t log_buffer_len;

void
log_setup(enum log_level level, bool with_timestamps)
{
    log_level_current = level;
    log_timestamps = with_timestamps;
    log_pid = (long)getpid();
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
    return level <= log_level_current;
}

void
log_write(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char raw[LOG_LINE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t raw_len = (size_t)n < sizeof(raw) ? (size_t)n : sizeof(raw) - 1;

    char line[LOG_LINE_BYTES * 2];
    size_t len = 0;
    if (log_timestamps) {
        struct timeval tv;
        (void)gettimeofday(&tv, NULL);
        struct tm tm;
        (void)gmtime_r(&tv.tv_sec, &tm);
        len += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        len += (size_t)snprintf(line + len, sizeof(line) - len, ".%03ldZ ",
                                (long)(tv.tv_usec / 1000));
    }
    static const char *const level_tags[] = { "error: ", "warning: ", "", "debug: " };
    len += (size_t)snprintf(line + len, sizeof(line) - len, "toasterd[%ld]: %s", log_pid ? log_pid : (long)getpid(),
                            level_tags[level]);
    for (size_t i = 0; i < raw_len && len + 8 < sizeof(line); i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c < 0x20 || c == 0x7f) {
            len += (size_t)snprintf(line + len, sizeof(line) - len, "\\x%02x", c);
        } else {
            line[len++] = (char)c;
        }
    }
    if ((size_t)n >= sizeof(raw) && len + 4 < sizeof(line)) {
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';
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
