/*
 * tests/unit/test_bench_reply.c - the SMTP reply parser of toaster-bench
 * (bench/bench_reply.c).
 *
 * Table-driven lines (valid, malformed, borderline) fed one at a time; whole
 * multi-line replies with their codes and EHLO keywords; the line limit at
 * max - 1, max and max + 1; and a byte stream split into lines the way the
 * client's receive buffer does it, whole and again one byte at a time, which
 * must give the same replies. Every line is parsed from an exact-size heap
 * copy, so a sanitizer build catches any read past it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_reply.h"
#include "unit.h"

/* Parse one line from an exact-size copy (no NUL after it). */
static enum bench_reply_result
feed(struct bench_reply *reply, const char *line, size_t line_bytes)
{
    char *copy = malloc(line_bytes > 0 ? line_bytes : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, line, line_bytes);
    enum bench_reply_result result = bench_reply_feed(reply, copy, line_bytes);
    free(copy);
    return result;
}

static enum bench_reply_result
feed_str(struct bench_reply *reply, const char *line)
{
    return feed(reply, line, strlen(line));
}

static uint32_t
extension_of(const char *line)
{
    size_t n = strlen(line);
    char *copy = malloc(n > 0 ? n : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, line, n);
    uint32_t ext = bench_reply_extension(copy, n);
    free(copy);
    return ext;
}

static void
test_line_next(void)
{
    size_t line_bytes = 12345;

    CHECK(bench_reply_line_next("", 0, &line_bytes) == 0);
    CHECK(bench_reply_line_next("250 OK", 6, &line_bytes) == 0);
    CHECK(bench_reply_line_next("250 OK\r", 7, &line_bytes) == 0); /* CR alone ends nothing */
    CHECK(line_bytes == 12345);                                    /* untouched */

    CHECK(bench_reply_line_next("250 OK\r\n", 8, &line_bytes) == 8);
    CHECK(line_bytes == 6);
    CHECK(bench_reply_line_next("250 OK\n", 7, &line_bytes) == 7); /* bare LF tolerated */
    CHECK(line_bytes == 6);
    CHECK(bench_reply_line_next("\r\n", 2, &line_bytes) == 2);
    CHECK(line_bytes == 0);
    CHECK(bench_reply_line_next("\n", 1, &line_bytes) == 1);
    CHECK(line_bytes == 0);
    /* Only one CR before the LF belongs to the line end. */
    CHECK(bench_reply_line_next("250 a\r\r\n", 8, &line_bytes) == 8);
    CHECK(line_bytes == 6);
    /* The first of two lines. */
    CHECK(bench_reply_line_next("250-a\r\n250 b\r\n", 14, &line_bytes) == 7);
    CHECK(line_bytes == 5);
    /* buf_bytes bounds the search: the LF after it does not count. */
    CHECK(bench_reply_line_next("250 OK\r\n", 7, &line_bytes) == 0);
}

struct line_case {
    const char             *line;
    enum bench_reply_result result;
    int                     code; /* when DONE or NEED_MORE */
};

static const struct line_case line_cases[] = {
    {"250 OK", BENCH_REPLY_DONE, 250},
    {"250", BENCH_REPLY_DONE, 250},
    {"250 ", BENCH_REPLY_DONE, 250},
    {"220 mx.example.com ESMTP toaster", BENCH_REPLY_DONE, 220},
    {"221 2.0.0 Bye", BENCH_REPLY_DONE, 221},
    {"354 End data with <CR><LF>.<CR><LF>", BENCH_REPLY_DONE, 354},
    {"421 4.7.0 Too many connections", BENCH_REPLY_DONE, 421},
    {"550 5.1.1 User unknown", BENCH_REPLY_DONE, 550},
    {"554 5.7.1 Relay access denied", BENCH_REPLY_DONE, 554},
    {"200 lowest", BENCH_REPLY_DONE, 200},
    {"599 highest", BENCH_REPLY_DONE, 599},
    {"250-mx.example.com", BENCH_REPLY_NEED_MORE, 250},
    {"250-", BENCH_REPLY_NEED_MORE, 250},
    {"", BENCH_REPLY_ERROR, 0},
    {"2", BENCH_REPLY_ERROR, 0},
    {"25", BENCH_REPLY_ERROR, 0},
    {"199 too low", BENCH_REPLY_ERROR, 0},
    {"600 too high", BENCH_REPLY_ERROR, 0},
    {"099 zero", BENCH_REPLY_ERROR, 0},
    {"2a0 letter", BENCH_REPLY_ERROR, 0},
    {"25a letter", BENCH_REPLY_ERROR, 0},
    {"250x no separator", BENCH_REPLY_ERROR, 0},
    {"250\tOK", BENCH_REPLY_ERROR, 0},
    {"2500 four digits", BENCH_REPLY_ERROR, 0},
    {" 250 leading space", BENCH_REPLY_ERROR, 0},
    {"HTTP/1.1 400 Bad Request", BENCH_REPLY_ERROR, 0},
    {"+OK POP3 server ready", BENCH_REPLY_ERROR, 0},
    {"* OK IMAP4rev1", BENCH_REPLY_ERROR, 0},
    {"-250 minus", BENCH_REPLY_ERROR, 0},
};

static void
test_lines(void)
{
    for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
        const struct line_case *tc = &line_cases[i];
        struct bench_reply reply;
        bench_reply_init(&reply);
        enum bench_reply_result result = feed_str(&reply, tc->line);
        CHECK(result == tc->result);
        if (result != tc->result) {
            (void)fprintf(stderr, "  line \"%s\": result %d, want %d\n", tc->line, result,
                          tc->result);
        }
        if (tc->result == BENCH_REPLY_ERROR) {
            CHECK(reply.error == BENCH_REPLY_ERROR_MALFORMED);
        } else {
            CHECK(reply.error == BENCH_REPLY_ERROR_NONE);
            CHECK(reply.code == tc->code);
        }
    }

    /* Bytes the line holds, not a C string: NUL in the code is malformed,
     * NUL in the text is not the parser's business. */
    struct bench_reply reply;
    bench_reply_init(&reply);
    CHECK(feed(&reply, "2\0" "0 x", 5) == BENCH_REPLY_ERROR);
    bench_reply_init(&reply);
    CHECK(feed(&reply, "250\0x", 5) == BENCH_REPLY_ERROR);
    bench_reply_init(&reply);
    CHECK(feed(&reply, "250 a\0b", 7) == BENCH_REPLY_DONE);
    CHECK(reply.code == 250);
    bench_reply_init(&reply);
    CHECK(feed(&reply, "\xff\xfe\xfd", 3) == BENCH_REPLY_ERROR);
}

static void
test_multiline(void)
{
    struct bench_reply reply;

    /* toasterd's EHLO reply, keywords in any case, with arguments. */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250-mx.example.com") == BENCH_REPLY_NEED_MORE);
    CHECK(reply.line_count == 1);
    CHECK(feed_str(&reply, "250-pipelining") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "250-SIZE 52428800") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "250-8BITMIME") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "250-ENHANCEDSTATUSCODES") == BENCH_REPLY_NEED_MORE);
    CHECK(reply.line_count == 5);
    CHECK(feed_str(&reply, "250 Chunking") == BENCH_REPLY_DONE);
    CHECK(reply.code == 250);
    CHECK(reply.line_count == 0);
    CHECK(reply.extensions ==
          (BENCH_REPLY_EXT_PIPELINING | BENCH_REPLY_EXT_SIZE | BENCH_REPLY_EXT_CHUNKING));

    /* The next reply starts with no keywords. */
    CHECK(feed_str(&reply, "250 2.1.0 Ok") == BENCH_REPLY_DONE);
    CHECK(reply.extensions == 0);

    /* A server without extensions (what a plain server says). */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250-old.example") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "250 HELP") == BENCH_REPLY_DONE);
    CHECK(reply.extensions == 0);

    /* The first line is the server's name, even if it looks like a keyword. */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250 PIPELINING") == BENCH_REPLY_DONE);
    CHECK(reply.extensions == 0);
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250-CHUNKING") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "250 SIZE") == BENCH_REPLY_DONE);
    CHECK(reply.extensions == BENCH_REPLY_EXT_SIZE);

    /* Keywords count only on 250 lines. */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "220-mx.example.com") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "220-PIPELINING") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "220 ready") == BENCH_REPLY_DONE);
    CHECK(reply.code == 220);
    CHECK(reply.extensions == 0);

    /* A multi-line refusal: the code is the last line's. */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "550-5.1.1 The user you wrote to") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "550-5.1.1 does not exist here.") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "550 5.1.1 Try again later, or not.") == BENCH_REPLY_DONE);
    CHECK(reply.code == 550);

    /* Lines of a reply that disagree: the last line decides (as before). */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250-first") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "451 last") == BENCH_REPLY_DONE);
    CHECK(reply.code == 451);

    /* Garbage in the middle of a reply ends it with an error. */
    bench_reply_init(&reply);
    CHECK(feed_str(&reply, "250-mx.example.com") == BENCH_REPLY_NEED_MORE);
    CHECK(feed_str(&reply, "PIPELINING") == BENCH_REPLY_ERROR);
    CHECK(reply.error == BENCH_REPLY_ERROR_MALFORMED);
    bench_reply_init(&reply);
    CHECK(reply.error == BENCH_REPLY_ERROR_NONE);
    CHECK(reply.line_count == 0);
    CHECK(feed_str(&reply, "250 OK") == BENCH_REPLY_DONE);
}

static void
test_extension(void)
{
    CHECK(extension_of("250-PIPELINING") == BENCH_REPLY_EXT_PIPELINING);
    CHECK(extension_of("250 pipelining") == BENCH_REPLY_EXT_PIPELINING);
    CHECK(extension_of("250-CHUNKING") == BENCH_REPLY_EXT_CHUNKING);
    CHECK(extension_of("250-SIZE") == BENCH_REPLY_EXT_SIZE);
    CHECK(extension_of("250-SIZE 52428800") == BENCH_REPLY_EXT_SIZE);
    CHECK(extension_of("250-size 0") == BENCH_REPLY_EXT_SIZE);
    CHECK(extension_of("250-PIPELINING extra words") == BENCH_REPLY_EXT_PIPELINING);
    /* Near misses. */
    CHECK(extension_of("250-PIPELININGX") == 0);
    CHECK(extension_of("250-PIPELININ") == 0);
    CHECK(extension_of("250-SIZEX 10") == 0);
    CHECK(extension_of("250-SIZ") == 0);
    CHECK(extension_of("250-XCHUNKING") == 0);
    CHECK(extension_of("250- PIPELINING") == 0);
    CHECK(extension_of("250-8BITMIME") == 0);
    CHECK(extension_of("250-") == 0);
    CHECK(extension_of("250") == 0);
    CHECK(extension_of("") == 0);
    /* A keyword ends at the end of the line, not at the next NUL or space
     * somewhere after it: the line from an exact-size copy must do. */
    CHECK(extension_of("250-S") == 0);
}

/* Limits: at most BENCH_REPLY_LINES_MAX lines, the last one included. */
static void
test_line_limit(void)
{
    for (uint32_t lines = BENCH_REPLY_LINES_MAX - 1; lines <= BENCH_REPLY_LINES_MAX + 1; lines++) {
        struct bench_reply reply;
        bench_reply_init(&reply);
        enum bench_reply_result result = BENCH_REPLY_NEED_MORE;
        uint32_t fed = 0;
        while (fed < lines && result == BENCH_REPLY_NEED_MORE) {
            fed++;
            result = feed_str(&reply, fed < lines ? "250-more" : "250 end");
        }
        if (lines <= BENCH_REPLY_LINES_MAX) {
            CHECK(result == BENCH_REPLY_DONE);
            CHECK(fed == lines);
            CHECK(reply.code == 250);
        } else {
            /* The continuation line that would make room for no last line. */
            CHECK(result == BENCH_REPLY_ERROR);
            CHECK(reply.error == BENCH_REPLY_ERROR_TOO_MANY_LINES);
            CHECK(fed == BENCH_REPLY_LINES_MAX);
        }
    }
    /* The count starts again with each reply. */
    struct bench_reply reply;
    bench_reply_init(&reply);
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i + 1 < BENCH_REPLY_LINES_MAX; i++) {
            CHECK(feed_str(&reply, "250-more") == BENCH_REPLY_NEED_MORE);
        }
        CHECK(feed_str(&reply, "250 end") == BENCH_REPLY_DONE);
    }
}

/* What the client sees of a stream: one entry per complete reply or error. */
struct event {
    enum bench_reply_result result;
    int                     code;
    uint32_t                extensions;
    enum bench_reply_error  error;
};

#define EVENTS_MAX 64
#define STREAM_BUFFER_BYTES 256

/* Split a stream into lines as bench_smtp.c's receive buffer does, receiving
 * chunk bytes at a time into a fixed buffer; stop at the first error. */
static size_t
stream_events(const char *bytes, size_t bytes_total, size_t chunk, struct event *events)
{
    char buf[STREAM_BUFFER_BYTES];
    size_t buf_bytes = 0;
    size_t event_count = 0;
    struct bench_reply reply;

    bench_reply_init(&reply);
    for (size_t done = 0; done < bytes_total;) {
        size_t n = bytes_total - done < chunk ? bytes_total - done : chunk;
        if (n > sizeof(buf) - buf_bytes) {
            n = sizeof(buf) - buf_bytes;
        }
        memcpy(buf + buf_bytes, bytes + done, n);
        buf_bytes += n;
        done += n;
        size_t pos = 0;
        for (;;) {
            size_t line_bytes;
            size_t taken = bench_reply_line_next(buf + pos, buf_bytes - pos, &line_bytes);
            if (taken == 0) {
                break;
            }
            enum bench_reply_result result = feed(&reply, buf + pos, line_bytes);
            pos += taken;
            if (result == BENCH_REPLY_NEED_MORE) {
                continue;
            }
            if (event_count < EVENTS_MAX) {
                events[event_count++] = (struct event){result, reply.code, reply.extensions,
                                                       reply.error};
            }
            if (result == BENCH_REPLY_ERROR) {
                return event_count;
            }
        }
        memmove(buf, buf + pos, buf_bytes - pos);
        buf_bytes -= pos;
        if (buf_bytes == sizeof(buf)) {
            return event_count; /* a line too long: the client's error, not ours */
        }
    }
    return event_count;
}

static void
test_stream(void)
{
    static const char stream[] = "220 mx.example.com ESMTP\r\n"
                                 "250-mx.example.com\r\n"
                                 "250-PIPELINING\r\n"
                                 "250-SIZE 52428800\r\n"
                                 "250 CHUNKING\r\n"
                                 "250 2.1.0 Ok\r\n"
                                 "250 2.1.5 Ok\r\n"
                                 "550 5.1.1 <nobody@example.com>: User unknown\r\n"
                                 "354 go ahead\n" /* bare LF */
                                 "250 2.0.0 Ok: queued as 14CB8BFEB7900000\r\n"
                                 "221 2.0.0 Bye\r\n"
                                 "not a reply\r\n"
                                 "250 never seen\r\n";
    struct event whole[EVENTS_MAX];
    struct event bytewise[EVENTS_MAX];
    struct event sevens[EVENTS_MAX];

    size_t n = stream_events(stream, sizeof(stream) - 1, sizeof(stream), whole);
    CHECK(n == 9);
    static const int codes[] = {220, 250, 250, 250, 550, 354, 250, 221};
    for (size_t i = 0; i < 8 && i < n; i++) {
        CHECK(whole[i].result == BENCH_REPLY_DONE);
        CHECK(whole[i].code == codes[i]);
    }
    if (n == 9) {
        CHECK(whole[1].extensions ==
              (BENCH_REPLY_EXT_PIPELINING | BENCH_REPLY_EXT_SIZE | BENCH_REPLY_EXT_CHUNKING));
        CHECK(whole[2].extensions == 0);
        CHECK(whole[8].result == BENCH_REPLY_ERROR);
        CHECK(whole[8].error == BENCH_REPLY_ERROR_MALFORMED);
    }

    /* The same replies, whatever the bytes arrive in. */
    CHECK(stream_events(stream, sizeof(stream) - 1, 1, bytewise) == n);
    CHECK(stream_events(stream, sizeof(stream) - 1, 7, sevens) == n);
    for (size_t i = 0; i < n; i++) {
        CHECK(memcmp(&bytewise[i], &whole[i], sizeof(whole[i])) == 0);
        CHECK(memcmp(&sevens[i], &whole[i], sizeof(whole[i])) == 0);
    }
}

static void
test_error_text(void)
{
    const char *none = bench_reply_error_text(BENCH_REPLY_ERROR_NONE);
    const char *malformed = bench_reply_error_text(BENCH_REPLY_ERROR_MALFORMED);
    const char *too_many = bench_reply_error_text(BENCH_REPLY_ERROR_TOO_MANY_LINES);

    CHECK(none != NULL && malformed != NULL && too_many != NULL);
    /* The texts the client logged before the parser moved out. */
    CHECK_STR(malformed, "malformed reply");
    CHECK_STR(too_many, "reply with too many lines");
    CHECK(strcmp(none, malformed) != 0);
}

int
main(void)
{
    test_line_next();
    test_lines();
    test_multiline();
    test_extension();
    test_line_limit();
    test_stream();
    test_error_text();
    UNIT_DONE();
}
