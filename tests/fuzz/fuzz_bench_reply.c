/*
 * tests/fuzz/fuzz_bench_reply.c - libFuzzer harness for toaster-bench's SMTP
 * reply parser (bench/bench_reply.c), which reads what a server sends.
 *
 * The input is a stream of server bytes. It is split into lines with
 * bench_reply_line_next() over an exact-size heap copy, so ASan sees any
 * read past the bytes received, and each line is fed to bench_reply_feed()
 * from an exact-size copy of its own. Every answer is checked against a
 * reference written here from RFC 5321 4.2 (three digits, the first 2..5,
 * then space, hyphen or nothing; at most BENCH_REPLY_LINES_MAX lines; the
 * EHLO keywords). The same bytes are then received again in chunks whose
 * sizes come from the input, through a fixed receive buffer as the client
 * has, and must give the same replies. A broken property aborts.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   bench/bench_reply.c core/assertions.c tests/fuzz/fuzz_bench_reply.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench/bench_reply.h"
#include "tests/fuzz/fuzz_check.h"

/* The client's receive buffer (bench_smtp.c RECV_BUFFER_BYTES). */
#define FUZZ_RECV_BUFFER_BYTES 2048

/* Replies remembered for the comparison; the input is at most -max_len. */
#define FUZZ_EVENTS_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct event {
    enum bench_reply_result result;
    int                     code;
    uint32_t                extensions;
    enum bench_reply_error  error;
};

struct events {
    struct event items[FUZZ_EVENTS_MAX];
    size_t       count;
};

/* Reference model of one reply's progress. */
struct model {
    uint32_t line_count;
    uint32_t extensions;
};

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static uint32_t
model_keyword(const char *line, size_t line_bytes)
{
    static const struct {
        const char *name;
        uint32_t    bit;
    } keywords[] = {
        {"PIPELINING", BENCH_REPLY_EXT_PIPELINING},
        {"CHUNKING", BENCH_REPLY_EXT_CHUNKING},
        {"SIZE", BENCH_REPLY_EXT_SIZE},
    };
    if (line_bytes <= 4) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        size_t n = strlen(keywords[i].name);
        /* The keyword, then the end of the line or a space. */
        if (line_bytes - 4 >= n && strncasecmp(line + 4, keywords[i].name, n) == 0 &&
            memchr(line + 4, '\0', n) == NULL && (line_bytes - 4 == n || line[4 + n] == ' ')) {
            return keywords[i].bit;
        }
    }
    return 0;
}

/* Feed one line to the parser and check its answer against the model. */
static enum bench_reply_result
feed_checked(struct bench_reply *reply, struct model *model, const char *bytes,
             size_t line_bytes)
{
    char *line = malloc(line_bytes > 0 ? line_bytes : 1);
    FUZZ_CHECK(line != NULL);
    if (line_bytes > 0) {
        memcpy(line, bytes, line_bytes);
    }
    bool is_malformed = line_bytes < 3 || line[0] < '2' || line[0] > '5' || !is_digit(line[1]) ||
                        !is_digit(line[2]) ||
                        (line_bytes > 3 && line[3] != ' ' && line[3] != '-');
    if (model->line_count == 0) {
        model->extensions = 0;
    }

    enum bench_reply_result result = bench_reply_feed(reply, line, line_bytes);
    FUZZ_CHECK(bench_reply_error_text(reply->error) != NULL);
    if (is_malformed) {
        FUZZ_CHECK(result == BENCH_REPLY_ERROR);
        FUZZ_CHECK(reply->error == BENCH_REPLY_ERROR_MALFORMED);
        free(line);
        return result;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    bool is_last = line_bytes == 3 || line[3] == ' ';
    uint32_t keyword = model_keyword(line, line_bytes);
    FUZZ_CHECK(bench_reply_extension(line, line_bytes) == keyword);
    if (code == 250 && model->line_count > 0) {
        model->extensions |= keyword;
    }
    model->line_count++;

    FUZZ_CHECK(reply->code == code);
    FUZZ_CHECK(code >= 200 && code <= 599);
    FUZZ_CHECK(reply->extensions == model->extensions);
    if (is_last) {
        FUZZ_CHECK(result == BENCH_REPLY_DONE);
        FUZZ_CHECK(reply->error == BENCH_REPLY_ERROR_NONE);
        FUZZ_CHECK(reply->line_count == 0);
        model->line_count = 0;
    } else if (model->line_count >= BENCH_REPLY_LINES_MAX) {
        FUZZ_CHECK(result == BENCH_REPLY_ERROR);
        FUZZ_CHECK(reply->error == BENCH_REPLY_ERROR_TOO_MANY_LINES);
    } else {
        FUZZ_CHECK(result == BENCH_REPLY_NEED_MORE);
        FUZZ_CHECK(reply->error == BENCH_REPLY_ERROR_NONE);
        FUZZ_CHECK(reply->line_count == model->line_count);
        FUZZ_CHECK(reply->line_count < BENCH_REPLY_LINES_MAX);
    }
    free(line);
    return result;
}

static void
event_add(struct events *events, const struct bench_reply *reply, enum bench_reply_result result)
{
    if (result == BENCH_REPLY_NEED_MORE || events->count == FUZZ_EVENTS_MAX) {
        return;
    }
    events->items[events->count++] =
        (struct event){result, reply->code, reply->extensions, reply->error};
}

/* Split buf into lines, checking bench_reply_line_next() on the way;
 * returns the bytes consumed. After an error the parser starts over, so
 * one input explores past its first broken line. */
static size_t
lines_feed(struct bench_reply *reply, struct model *model, const char *buf, size_t buf_bytes,
           struct events *events)
{
    size_t pos = 0;
    for (;;) {
        size_t line_bytes = SIZE_MAX;
        size_t taken = bench_reply_line_next(buf + pos, buf_bytes - pos, &line_bytes);
        const char *lf = buf_bytes > pos ? memchr(buf + pos, '\n', buf_bytes - pos) : NULL;
        if (taken == 0) {
            FUZZ_CHECK(lf == NULL);
            FUZZ_CHECK(line_bytes == SIZE_MAX);
            return pos;
        }
        FUZZ_CHECK(lf != NULL);
        FUZZ_CHECK(taken == (size_t)(lf - (buf + pos)) + 1);
        FUZZ_CHECK(line_bytes == taken - 1 || line_bytes == taken - 2);
        if (line_bytes == taken - 2) {
            FUZZ_CHECK(buf[pos + line_bytes] == '\r');
        } else {
            FUZZ_CHECK(taken == 1 || buf[pos + taken - 2] != '\r');
        }
        enum bench_reply_result result = feed_checked(reply, model, buf + pos, line_bytes);
        event_add(events, reply, result);
        if (result == BENCH_REPLY_ERROR) {
            bench_reply_init(reply);
            FUZZ_CHECK(reply->line_count == 0 && reply->error == BENCH_REPLY_ERROR_NONE);
            *model = (struct model){0, 0};
        }
        pos += taken;
    }
}

static struct events whole;
static struct events chunked;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bench_reply reply;
    struct model model = {0, 0};

    /* All the bytes at once, from an exact-size copy. */
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    whole.count = 0;
    bench_reply_init(&reply);
    (void)lines_feed(&reply, &model, copy, size, &whole);
    free(copy);

    /* Again through a fixed receive buffer, in chunks of 1..64 bytes
     * (sizes from the input itself), moving the unparsed rest to the front
     * as the client does. A line that fills the buffer ends it there (the
     * client's "line too long"), so only a prefix must match then. */
    chunked.count = 0;
    bench_reply_init(&reply);
    model = (struct model){0, 0};
    char *recv_buf = malloc(FUZZ_RECV_BUFFER_BYTES);
    FUZZ_CHECK(recv_buf != NULL);
    size_t recv_bytes = 0;
    size_t done = 0;
    bool is_too_long = false;
    for (size_t round = 0; done < size; round++) {
        size_t chunk = 1 + data[round % size] % 64;
        if (chunk > size - done) {
            chunk = size - done;
        }
        if (chunk > FUZZ_RECV_BUFFER_BYTES - recv_bytes) {
            chunk = FUZZ_RECV_BUFFER_BYTES - recv_bytes;
        }
        memcpy(recv_buf + recv_bytes, data + done, chunk);
        recv_bytes += chunk;
        done += chunk;
        size_t used = lines_feed(&reply, &model, recv_buf, recv_bytes, &chunked);
        FUZZ_CHECK(used <= recv_bytes);
        memmove(recv_buf, recv_buf + used, recv_bytes - used);
        recv_bytes -= used;
        if (recv_bytes == FUZZ_RECV_BUFFER_BYTES) {
            is_too_long = true;
            break;
        }
    }
    free(recv_buf);

    FUZZ_CHECK(chunked.count <= whole.count);
    if (!is_too_long) {
        FUZZ_CHECK(chunked.count == whole.count);
    }
    for (size_t i = 0; i < chunked.count; i++) {
        FUZZ_CHECK(memcmp(&chunked.items[i], &whole.items[i], sizeof(whole.items[i])) == 0);
    }
    return 0;
}
