/*
 * bench/bench_reply.c - parses the SMTP replies toaster-bench receives.
 *
 * Owns only the small per-connection struct bench_reply; the bytes stay in
 * the caller's receive buffer and are read, never kept. Runs on the
 * event-loop thread that owns the connection. Every byte comes from the
 * network, so nothing here asserts on it: a line that is not a reply is an
 * error the caller counts. Limits: BENCH_REPLY_LINES_MAX lines per reply;
 * a line's length is bounded by the caller's buffer.
 */
#include "bench/bench_reply.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"

/* "250-" or "250 ": where the text (an EHLO keyword) starts. */
#define REPLY_TEXT_OFFSET 4

static bool is_digit(char c);

void
bench_reply_init(struct bench_reply *reply)
{
    ASSERT(reply != NULL);
    memset(reply, 0, sizeof(*reply));
}

size_t
bench_reply_line_next(const char *buf, size_t buf_bytes, size_t *line_bytes_out)
{
    ASSERT(line_bytes_out != NULL);
    if (buf_bytes == 0) {
        return 0;
    }
    const char *newline = memchr(buf, '\n', buf_bytes);
    if (newline == NULL) {
        return 0;
    }
    size_t line_bytes = (size_t)(newline - buf);
    if (line_bytes > 0 && buf[line_bytes - 1] == '\r') {
        line_bytes--;
    }
    *line_bytes_out = line_bytes;
    return (size_t)(newline - buf) + 1;
}

enum bench_reply_result
bench_reply_feed(struct bench_reply *reply, const char *line, size_t line_bytes)
{
    ASSERT(reply != NULL);
    ASSERT(reply->error == BENCH_REPLY_ERROR_NONE);
    if (reply->line_count == 0) {
        reply->extensions = 0; /* a new reply */
    }
    /* RFC 5321 4.2: three digits, the first 2..5, then a space, a hyphen
     * or nothing. */
    if (line_bytes < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
        !is_digit(line[2]) || (line_bytes > 3 && line[3] != ' ' && line[3] != '-')) {
        reply->error = BENCH_REPLY_ERROR_MALFORMED;
        return BENCH_REPLY_ERROR;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool is_last = line_bytes == 3 || line[3] == ' ';

    /* In an EHLO reply the first line is the server's name; the keywords
     * follow. Only the caller knows whether this is an EHLO reply. */
    if (code == 250 && reply->line_count > 0) {
        reply->extensions |= bench_reply_extension(line, line_bytes);
    }
    reply->code = code;
    reply->line_count++;
    if (!is_last) {
        if (reply->line_count >= BENCH_REPLY_LINES_MAX) {
            reply->error = BENCH_REPLY_ERROR_TOO_MANY_LINES;
            return BENCH_REPLY_ERROR;
        }
        return BENCH_REPLY_NEED_MORE;
    }
    reply->line_count = 0;
    return BENCH_REPLY_DONE;
}

uint32_t
bench_reply_extension(const char *line, size_t line_bytes)
{
    if (line_bytes <= REPLY_TEXT_OFFSET) {
        return 0;
    }
    /* The keyword ends at a space or at the end of the line; the line is
     * not NUL-terminated, so the search is bounded by its length. */
    const char *keyword = line + REPLY_TEXT_OFFSET;
    size_t text_bytes = line_bytes - REPLY_TEXT_OFFSET;
    const char *space = memchr(keyword, ' ', text_bytes);
    size_t keyword_bytes = space != NULL ? (size_t)(space - keyword) : text_bytes;

    if (keyword_bytes == 10 && strncasecmp(keyword, "PIPELINING", 10) == 0) {
        return BENCH_REPLY_EXT_PIPELINING;
    }
    if (keyword_bytes == 8 && strncasecmp(keyword, "CHUNKING", 8) == 0) {
        return BENCH_REPLY_EXT_CHUNKING;
    }
    if (keyword_bytes == 4 && strncasecmp(keyword, "SIZE", 4) == 0) {
        return BENCH_REPLY_EXT_SIZE;
    }
    return 0;
}

const char *
bench_reply_error_text(enum bench_reply_error error)
{
    switch (error) {
    case BENCH_REPLY_ERROR_NONE:
        return "no error";
    case BENCH_REPLY_ERROR_MALFORMED:
        return "malformed reply";
    case BENCH_REPLY_ERROR_TOO_MANY_LINES:
        return "reply with too many lines";
    }
    return "unknown reply error";
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}
