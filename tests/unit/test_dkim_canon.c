/*
 * tests/unit/test_dkim_canon.c - DKIM canonicalization (RFC 6376 3.4):
 * the example of 3.4.6 in all four forms, then the edge cases one at a
 * time: empty bodies, whitespace-only lines at the end, a body without a
 * final CRLF, bare CR and LF inside lines, WSP runs and folding in header
 * fields, and l= shorter and longer than the body. Every body is fed whole,
 * one byte at a time, and split at every position, and must give the same
 * bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/dkim_canon.h"
#include "tests/unit/unit.h"

int main(void);

struct sink {
    char bytes[4096];
    size_t len;
    size_t calls;
};

static void
sink_emit(void *arg, const char *bytes, size_t len)
{
    struct sink *sink = arg;
    if (sink->len + len <= sizeof(sink->bytes)) {
        memcpy(sink->bytes + sink->len, bytes, len);
    }
    sink->len += len;
    sink->calls++;
}

/* Canonicalize in pieces of piece bytes (0: whole). */
static void
body_run(enum dkim_canon canon, const char *in, size_t len, bool has_limit, uint64_t limit,
         size_t piece, struct sink *sink, uint64_t *canonical_out)
{
    struct dkim_body_canon bc;
    memset(sink, 0, sizeof(*sink));
    dkim_body_canon_init(&bc, canon, has_limit, limit, sink_emit, sink);
    if (piece == 0) {
        dkim_body_canon_feed(&bc, in, len);
    } else {
        for (size_t i = 0; i < len; i += piece) {
            dkim_body_canon_feed(&bc, in + i, len - i < piece ? len - i : piece);
        }
    }
    dkim_body_canon_finish(&bc);
    if (canonical_out != NULL) {
        *canonical_out = bc.canonical_bytes;
    }
}

/* Check the body canonicalizes to want, however it is split. */
static void
check_body(int line, enum dkim_canon canon, const char *in, size_t in_len, const char *want,
           size_t want_len)
{
    struct sink sink;
    body_run(canon, in, in_len, false, 0, 0, &sink, NULL);
    if (sink.len != want_len || memcmp(sink.bytes, want, want_len) != 0) {
        fprintf(stderr, "line %d:\n", line);
    }
    CHECK_BYTES(sink.bytes, sink.len, want, want_len);
    body_run(canon, in, in_len, false, 0, 1, &sink, NULL);
    CHECK_BYTES(sink.bytes, sink.len, want, want_len);
    /* Split in two at every position. */
    for (size_t cut = 0; cut <= in_len; cut++) {
        struct dkim_body_canon bc;
        struct sink two = {.len = 0};
        dkim_body_canon_init(&bc, canon, false, 0, sink_emit, &two);
        dkim_body_canon_feed(&bc, in, cut);
        dkim_body_canon_feed(&bc, in + cut, in_len - cut);
        dkim_body_canon_finish(&bc);
        if (two.len != want_len || memcmp(two.bytes, want, want_len) != 0) {
            fprintf(stderr, "line %d: split at %zu differs\n", line, cut);
            CHECK(false);
        }
    }
}

#define BODY(canon, in, want)                                                                      \
    check_body(__LINE__, canon, in, sizeof(in) - 1, want, sizeof(want) - 1)

static void
check_header(enum dkim_canon canon, const char *field, const char *want)
{
    char out[512];
    size_t len = 0;
    CHECK(dkim_canon_header(canon, field, strlen(field), out, sizeof(out), &len) == 0);
    CHECK_BYTES(out, len, want, strlen(want));
}

/* RFC 6376 3.4.6. */
static void
test_rfc_example(void)
{
    const char *field_a = "A: X";
    const char *field_b = "B : Y\t\r\n\tZ  ";
    check_header(DKIM_CANON_RELAXED, field_a, "a:X");
    check_header(DKIM_CANON_RELAXED, field_b, "b:Y Z");
    check_header(DKIM_CANON_SIMPLE, field_a, "A: X");
    check_header(DKIM_CANON_SIMPLE, field_b, "B : Y\t\r\n\tZ  ");
    static const char body[] = " C \r\nD \t E\r\n\r\n\r\n";
    BODY(DKIM_CANON_RELAXED, body, " C\r\nD E\r\n");
    BODY(DKIM_CANON_SIMPLE, body, " C \r\nD \t E\r\n");
}

static void
test_header_edges(void)
{
    /* WSP around the colon and at both ends of the value; folding. */
    check_header(DKIM_CANON_RELAXED, "SUBJect \t:\t  a  \t b\r\n c \t", "subject:a b c");
    check_header(DKIM_CANON_RELAXED, "To:", "to:");
    check_header(DKIM_CANON_RELAXED, "To: \r\n ", "to:");
    /* A field without a colon keeps its lower-cased name only. */
    check_header(DKIM_CANON_RELAXED, "Broken", "broken");
    /* Bare CR and LF inside a value are bytes, not line ends. */
    check_header(DKIM_CANON_RELAXED, "X: a\rb\nc", "x:a\rb\nc");
    /* A colon in the value stays. */
    check_header(DKIM_CANON_RELAXED, "Date: Fri, 4 Dec 2026 10:00:00",
                 "date:Fri, 4 Dec 2026 10:00:00");
    /* Output space: the result never grows; too small a buffer says so. */
    char out[4];
    size_t len = 0;
    CHECK(dkim_canon_header(DKIM_CANON_RELAXED, "Subject: x", 10, out, sizeof(out), &len) ==
          -ENOSPC);
    CHECK(dkim_canon_header(DKIM_CANON_SIMPLE, "Subject: x", 10, out, sizeof(out), &len) ==
          -ENOSPC);
    CHECK(dkim_canon_header(DKIM_CANON_RELAXED, "S: x", 4, out, sizeof(out), &len) == 0 &&
          len == 3);
    /* Found by fuzz_dkim: an empty field fits an empty output. */
    CHECK(dkim_canon_header(DKIM_CANON_RELAXED, "", 0, out, 0, &len) == 0 && len == 0);
    CHECK(dkim_canon_header(DKIM_CANON_RELAXED, "ab", 2, out, 2, &len) == 0 && len == 2);
    CHECK(dkim_canon_header(DKIM_CANON_RELAXED, "a:", 2, out, 2, &len) == 0 && len == 2);
}

static void
test_body_edges(void)
{
    /* Empty body: CRLF in simple, nothing in relaxed (RFC 6376 3.4.3, 3.4.4). */
    BODY(DKIM_CANON_SIMPLE, "", "\r\n");
    BODY(DKIM_CANON_RELAXED, "", "");
    /* Only empty lines: the same. */
    BODY(DKIM_CANON_SIMPLE, "\r\n\r\n\r\n", "\r\n");
    BODY(DKIM_CANON_RELAXED, "\r\n\r\n\r\n", "");
    /* Whitespace-only lines at the end: kept by simple, gone in relaxed. */
    BODY(DKIM_CANON_SIMPLE, "a\r\n \r\n\t\r\n\r\n", "a\r\n \r\n\t\r\n");
    BODY(DKIM_CANON_RELAXED, "a\r\n \r\n\t\r\n\r\n", "a\r\n");
    BODY(DKIM_CANON_RELAXED, " \t \r\n", "");
    /* Empty and blank lines inside the body stay. */
    BODY(DKIM_CANON_RELAXED, "a\r\n\r\n  \r\nb\r\n", "a\r\n\r\n\r\nb\r\n");
    BODY(DKIM_CANON_SIMPLE, "a\r\n\r\n  \r\nb\r\n", "a\r\n\r\n  \r\nb\r\n");
    /* No final CRLF: one is added. */
    BODY(DKIM_CANON_SIMPLE, "a", "a\r\n");
    BODY(DKIM_CANON_RELAXED, "a \t", "a\r\n");
    BODY(DKIM_CANON_SIMPLE, "a\r\n\r\nb", "a\r\n\r\nb\r\n");
    /* Bare CR and bare LF are content, in the middle and at the end. */
    BODY(DKIM_CANON_SIMPLE, "a\rb\nc\r\n", "a\rb\nc\r\n");
    BODY(DKIM_CANON_RELAXED, "a \r b\n\r\n", "a \r b\n\r\n");
    BODY(DKIM_CANON_SIMPLE, "a\r", "a\r\r\n");
    BODY(DKIM_CANON_SIMPLE, "\n", "\n\r\n");
    BODY(DKIM_CANON_SIMPLE, "a\r\r\n", "a\r\r\n");
    BODY(DKIM_CANON_RELAXED, "\r", "\r\r\n");
    /* WSP runs, leading WSP. */
    BODY(DKIM_CANON_RELAXED, "  a \t\t b  \r\n", " a b\r\n");
    BODY(DKIM_CANON_SIMPLE, "  a \t\t b  \r\n", "  a \t\t b  \r\n");
    /* A long run of empty lines costs nothing and is written when content follows. */
    static char many[20004];
    for (size_t i = 0; i < 10000; i++) {
        memcpy(many + 2 * i, "\r\n", 2);
    }
    memcpy(many + 20000, "x\r\n", 3);
    struct sink sink;
    body_run(DKIM_CANON_RELAXED, many, 20000, false, 0, 7, &sink, NULL);
    CHECK(sink.len == 0);
    body_run(DKIM_CANON_SIMPLE, many, 20003, false, 0, 0, &sink, NULL);
    CHECK(sink.len == 20003);
}

static void
test_body_length(void)
{
    static const char body[] = "hello  world\r\nline two\r\n\r\n";
    /* relaxed canonical body: "hello world\r\nline two\r\n" = 23 bytes. */
    struct sink sink;
    uint64_t canonical = 0;
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 5, 0, &sink, &canonical);
    CHECK_BYTES(sink.bytes, sink.len, "hello", 5);
    CHECK(canonical == 23);
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 5, 1, &sink, &canonical);
    CHECK_BYTES(sink.bytes, sink.len, "hello", 5);
    /* l= 0: nothing hashed. */
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 0, 0, &sink, &canonical);
    CHECK(sink.len == 0 && canonical == 23);
    /* Exactly the body, one less, and longer than the body. */
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 23, 0, &sink, &canonical);
    CHECK_BYTES(sink.bytes, sink.len, "hello world\r\nline two\r\n", 23);
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 22, 0, &sink, &canonical);
    CHECK_BYTES(sink.bytes, sink.len, "hello world\r\nline two\r", 22);
    body_run(DKIM_CANON_RELAXED, body, sizeof(body) - 1, true, 1000, 0, &sink, &canonical);
    CHECK(sink.len == 23 && canonical == 23);
    /* The empty simple body is CRLF: l=1 hashes the CR. */
    body_run(DKIM_CANON_SIMPLE, "", 0, true, 1, 0, &sink, &canonical);
    CHECK_BYTES(sink.bytes, sink.len, "\r", 1);
    CHECK(canonical == 2);
    /* is_full says when more input changes nothing. */
    struct dkim_body_canon bc;
    dkim_body_canon_init(&bc, DKIM_CANON_SIMPLE, true, 3, sink_emit, &sink);
    memset(&sink, 0, sizeof(sink));
    dkim_body_canon_feed(&bc, "ab", 2);
    CHECK(!dkim_body_canon_is_full(&bc));
    dkim_body_canon_feed(&bc, "cd", 2);
    CHECK(dkim_body_canon_is_full(&bc));
    dkim_body_canon_finish(&bc);
    CHECK_BYTES(sink.bytes, sink.len, "abc", 3);
    dkim_body_canon_init(&bc, DKIM_CANON_SIMPLE, false, 0, sink_emit, &sink);
    dkim_body_canon_feed(&bc, "abcdef", 6);
    CHECK(!dkim_body_canon_is_full(&bc));
    dkim_body_canon_finish(&bc);
}

int
main(void)
{
    test_rfc_example();
    test_header_edges();
    test_body_edges();
    test_body_length();
    UNIT_DONE();
}
