/*
 * tests/unit/test_http_response.c - one HTTP/1.1 response read as the
 * MTA-STS policy fetch reads it (proto/http/http_response): sized,
 * chunked (RFC 9112 7.1) and close-delimited bodies, interim 1xx, 204,
 * the media type, every way of splitting the input, and what is refused:
 * malformed status lines, folded fields, a length beside chunked, two
 * lengths, unknown codings, and every bound.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto/http/http_response.h"
#include "tests/unit/unit.h"

#define BODY_MAX 64u

static char body[BODY_MAX];

/* Feeds text whole; returns the final code, *used what was taken. */
static int
feed_all(struct http_response *r, const char *text, size_t *used)
{
    http_response_init(r, body, BODY_MAX);
    return http_response_feed(r, (const uint8_t *)text, strlen(text), used);
}

/* The same response fed in pieces of every size gives the same result. */
static void
check_splits(const char *text, int want_rc, int want_status, const char *want_body)
{
    size_t len = strlen(text);
    for (size_t piece = 1; piece <= len; piece++) {
        struct http_response r;
        http_response_init(&r, body, BODY_MAX);
        int rc = 0;
        size_t at = 0;
        while (at < len && rc == 0) {
            size_t n = len - at < piece ? len - at : piece;
            size_t used = 0;
            rc = http_response_feed(&r, (const uint8_t *)text + at, n, &used);
            CHECK(used <= n);
            at += used;
        }
        if (rc == 0 && at == len) {
            rc = http_response_eof(&r);
        }
        CHECK(rc == want_rc);
        if (rc == 1) {
            CHECK(r.status == want_status);
            CHECK(r.body_len == strlen(want_body) && memcmp(body, want_body, r.body_len) == 0);
        }
    }
}

static void
test_bodies(void)
{
    struct http_response r;
    size_t used = 0;
    const char *sized = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Length: 14\r\n\r\nversion: STSv1NEXT";
    CHECK(feed_all(&r, sized, &used) == 1);
    CHECK(used == strlen(sized) - 4); /* the bytes after the body are not taken */
    CHECK(r.status == 200 && r.minor_version == 1);
    CHECK_STR(r.content_type, "text/plain");
    CHECK(r.body_kind == HTTP_BODY_LENGTH && r.body_len == 14);
    check_splits("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1, 200, "hello");
    /* Chunked, with an extension and a trailer (RFC 9112 7.1). */
    const char *chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
                          "Expires: never\r\n\r\n";
    CHECK(feed_all(&r, chunked, &used) == 1);
    CHECK(used == strlen(chunked));
    CHECK(r.body_kind == HTTP_BODY_CHUNKED);
    CHECK(r.body_len == 23 && memcmp(body, "Wikipedia in\r\n\r\nchunks.", 23) == 0);
    check_splits(chunked, 1, 200, "Wikipedia in\r\n\r\nchunks.");
    /* Until close; bare LF line ends accepted. */
    check_splits("HTTP/1.0 200 OK\nContent-Type: TEXT/PLAIN\n\nmode: testing\n", 1, 200,
                 "mode: testing\n");
    /* 100 Continue first; 204 with nothing after it; a 404 is a response too. */
    check_splits("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1,
                 200, "ok");
    CHECK(feed_all(&r, "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", &used) == 1);
    CHECK(r.body_kind == HTTP_BODY_NONE);
    check_splits("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found", 1, 404,
                 "not found");
    check_splits("HTTP/1.1 301 Moved\r\nLocation: https://x/\r\nContent-Length: 0\r\n\r\n", 1, 301,
                 "");
    /* Status line without a reason phrase. */
    check_splits("HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx", 1, 200, "x");
}

static void
test_refusals(void)
{
    struct http_response r;
    size_t used = 0;
    static const struct {
        const char *text;
        int rc;
    } bad[] = {
        {"HTTP/2 200 OK\r\n\r\n", -EPROTO},
        {"HTTP/1.1 20 OK\r\n\r\n", -EPROTO},
        {"HTTP/1.1 600 Odd\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200OK\r\n\r\n", -EPROTO},
        {"SMTP 220 hello\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nBad Name: a\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", -ENOTSUP},
        {"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n", -E2BIG},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n", -E2BIG},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", -EPROTO},
        {"HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", -EPROTO},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = feed_all(&r, bad[i].text, &used);
        if (rc != bad[i].rc) {
            fprintf(stderr, "case %zu: rc %d, want %d\n", i, rc, bad[i].rc);
            CHECK(false);
        }
        /* Once failed, it stays failed. */
        CHECK(http_response_feed(&r, (const uint8_t *)"x", 1, &used) < 0);
    }
    /* A close-delimited body past the buffer. */
    char big[200];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n\r\n%065d", 0);
    CHECK(n > 0);
    CHECK(feed_all(&r, big, &used) == -E2BIG);
    /* Cut short: before the head ends, inside a sized or chunked body. */
    CHECK(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Le", &used) == 0);
    CHECK(http_response_eof(&r) == -EPROTO);
    CHECK(feed_all(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", &used) == 0);
    CHECK(http_response_eof(&r) == -EPROTO);
    CHECK(feed_all(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", &used) ==
          0);
    CHECK(http_response_eof(&r) == -EPROTO);
    /* Bounds: one line, and the whole head. */
    static char text[HTTP_RESPONSE_HEAD_BYTES_MAX + 256];
    n = snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nX: ");
    memset(text + n, 'a', HTTP_RESPONSE_LINE_BYTES_MAX);
    text[n + HTTP_RESPONSE_LINE_BYTES_MAX] = '\0';
    CHECK(feed_all(&r, text, &used) == -E2BIG);
    size_t at = (size_t)snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\n");
    while (at + 32 < sizeof(text) - 1) {
        at += (size_t)snprintf(text + at, sizeof(text) - at, "X-Filler: 0123456789abcdef\r\n");
    }
    CHECK(feed_all(&r, text, &used) == -E2BIG);
    /* A content type longer than its field. */
    at = (size_t)snprintf(text, sizeof(text), "HTTP/1.1 200 OK\r\nContent-Type: text/");
    memset(text + at, 'x', HTTP_RESPONSE_CONTENT_TYPE_BYTES);
    (void)snprintf(text + at + HTTP_RESPONSE_CONTENT_TYPE_BYTES, 16, "\r\n\r\n");
    CHECK(feed_all(&r, text, &used) == -EPROTO);
}

int
main(void)
{
    test_bodies();
    test_refusals();
    UNIT_DONE();
}
