/*
 * tests/unit/test_http_request.c - the HTTP listener's request parser
 * (proto/http/http_request) and its response bytes (proto/http/http_reply).
 * Requests from RFC 9112's examples and the listener's own routes, each
 * fed whole and again in pieces of every size; every bound at max and
 * max + 1; and what is refused with which status: bare LF and CR, NUL,
 * obs-fold, blanks before a colon, duplicate Host and Content-Length,
 * Content-Length lists, Transfer-Encoding (alone and beside a length),
 * bodies on GET, versions we do not speak, and the query decoder.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http/http_reply.h"
#include "proto/http/http_request.h"
#include "tests/unit/unit.h"

#define BODY_MAX 64u

static char body[HTTP_REQUEST_BODY_BYTES_CEILING];

/* Feed text in pieces of piece bytes, lending the body buffer when asked.
 * Returns the final result; *used_out is what was taken in all. */
static int
feed_pieces(struct http_request *r, const char *text, size_t len, size_t piece, size_t *used_out)
{
    http_request_init(r, BODY_MAX);
    size_t at = 0;
    int rc = HTTP_REQUEST_NEED_MORE;
    for (size_t rounds = 0; rounds < 4 * len + 8; rounds++) {
        size_t n = len - at < piece ? len - at : piece;
        size_t used = 0;
        rc = http_request_feed(r, (const uint8_t *)text + at, n, &used);
        CHECK(used <= n);
        at += used;
        if (rc == HTTP_REQUEST_BODY_WANTED) {
            http_request_body_buffer(r, body, sizeof(body));
            continue;
        }
        if (rc != HTTP_REQUEST_NEED_MORE || at == len) {
            break;
        }
    }
    *used_out = at;
    return rc;
}

static int
feed_text(struct http_request *r, const char *text)
{
    size_t used = 0;
    return feed_pieces(r, text, strlen(text), strlen(text) + 1, &used);
}

/* Every split gives the same outcome (and the same status). */
static void
check_splits(const char *text, int want_rc, int want_status)
{
    size_t len = strlen(text);
    for (size_t piece = 1; piece <= len; piece++) {
        static struct http_request r;
        size_t used = 0;
        int rc = feed_pieces(&r, text, len, piece, &used);
        CHECK(rc == want_rc);
        if (rc == HTTP_REQUEST_FAILED) {
            CHECK(r.status == want_status);
        }
    }
}

/* Refused with status, fed whole and byte by byte. */
static void
check_refused(const char *text, int status)
{
    static struct http_request r;
    int rc = feed_text(&r, text);
    CHECK(rc == HTTP_REQUEST_FAILED);
    if (rc != HTTP_REQUEST_FAILED || r.status != status) {
        (void)fprintf(stderr, "  request: %.80s -> rc %d status %d (want %d)\n", text, rc,
                      r.status, status);
    }
    CHECK(r.status == status);
    CHECK(r.reason != NULL);
    check_splits(text, HTTP_REQUEST_FAILED, status);
}

static void
check_accepted(const char *text)
{
    static struct http_request r;
    int rc = feed_text(&r, text);
    if (rc != HTTP_REQUEST_DONE) {
        (void)fprintf(stderr, "  request: %.80s -> rc %d status %d %s\n", text, rc, r.status,
                      r.reason != NULL ? r.reason : "");
    }
    CHECK(rc == HTTP_REQUEST_DONE);
}

static void
test_get(void)
{
    static struct http_request r;
    const char *text = "GET /mail/config-v1.1.xml?emailaddress=alice%40Example.com HTTP/1.1\r\n"
                       "Host: autoconfig.Example.COM:8080\r\n"
                       "User-Agent: Thunderbird\r\n"
                       "\r\n"
                       "NEXT";
    size_t used = 0;
    http_request_init(&r, BODY_MAX);
    CHECK(http_request_feed(&r, (const uint8_t *)text, strlen(text), &used) == HTTP_REQUEST_DONE);
    CHECK(used == strlen(text) - 4); /* what follows the request is not taken */
    CHECK(r.method == HTTP_METHOD_GET);
    CHECK_STR(r.method_text, "GET");
    CHECK(r.minor_version == 1);
    CHECK_STR(r.target, "/mail/config-v1.1.xml?emailaddress=alice%40Example.com");
    CHECK(r.path_len == strlen("/mail/config-v1.1.xml"));
    CHECK_STR(r.host, "autoconfig.example.com");
    CHECK(r.has_host && !r.has_length && !r.expects_continue);
    char value[64];
    CHECK(http_request_query_param(&r, "emailaddress", value, sizeof(value)) == 17);
    CHECK_STR(value, "alice@Example.com");
    /* Fed again after it is done: the same answer, nothing taken. */
    CHECK(http_request_feed(&r, (const uint8_t *)"GET", 3, &used) == HTTP_REQUEST_DONE);
    CHECK(used == 0);
    check_splits(text, HTTP_REQUEST_DONE, 0);
}

/* RFC 9112 3.2.1 - 3.2.4 request-target forms, 2.2 leading empty lines. */
static void
test_rfc9112_examples(void)
{
    static struct http_request r;
    CHECK(feed_text(&r, "GET /pub/WWW/TheProject.html HTTP/1.1\r\nHost: www.example.org\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK_STR(r.target, "/pub/WWW/TheProject.html");
    CHECK_STR(r.host, "www.example.org");
    /* Absolute form: the authority is the host, whatever Host says. */
    CHECK(feed_text(&r, "GET http://www.example.org/pub/WWW/TheProject.html HTTP/1.1\r\n"
                        "Host: other.example\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK_STR(r.target, "/pub/WWW/TheProject.html");
    CHECK_STR(r.host, "www.example.org");
    CHECK(feed_text(&r, "GET http://www.example.org:8080?x=1 HTTP/1.1\r\nHost: a\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK_STR(r.target, "/?x=1");
    CHECK(r.path_len == 1);
    /* Asterisk and authority forms: methods we answer 405. */
    CHECK(feed_text(&r, "OPTIONS * HTTP/1.1\r\nHost: www.example.org:8001\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK(r.method == HTTP_METHOD_OTHER);
    CHECK_STR(r.method_text, "OPTIONS");
    CHECK(feed_text(&r, "CONNECT www.example.com:80 HTTP/1.1\r\nHost: www.example.com\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK(r.method == HTTP_METHOD_OTHER);
    /* HTTP/1.0 needs no Host; a later 1.x is read as 1.1. */
    CHECK(feed_text(&r, "HEAD / HTTP/1.0\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(r.method == HTTP_METHOD_HEAD && r.minor_version == 0 && !r.has_host);
    CHECK_STR(r.host, "");
    CHECK(feed_text(&r, "GET / HTTP/1.9\r\nHost: a\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(r.minor_version == 1);
    /* Empty lines before the request line are skipped (RFC 9112 2.2). */
    check_accepted("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    /* OWS around values, an empty Host, IPv6 literals, obs-text. */
    check_accepted("GET / HTTP/1.1\r\nHost:\r\n\r\n");
    CHECK(feed_text(&r, "GET / HTTP/1.1\r\nHost: \t[::1]:8080 \t\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK_STR(r.host, "[::1]");
    check_accepted("GET / HTTP/1.1\r\nHost: a\r\nX-Text: caf\xc3\xa9\r\n\r\n");
    /* Methods are case-sensitive: "get" is some other method. */
    CHECK(feed_text(&r, "get / HTTP/1.1\r\nHost: a\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(r.method == HTTP_METHOD_OTHER);
}

static void
test_post(void)
{
    static struct http_request r;
    const char *text = "POST /autodiscover/autodiscover.xml HTTP/1.1\r\n"
                       "Host: autodiscover.example.com\r\n"
                       "Content-Type: text/xml\r\n"
                       "Content-Length: 5\r\n"
                       "\r\n"
                       "helloGET";
    size_t used = 0;
    int rc = feed_pieces(&r, text, strlen(text), strlen(text), &used);
    CHECK(rc == HTTP_REQUEST_DONE);
    CHECK(used == strlen(text) - 3);
    CHECK(r.method == HTTP_METHOD_POST && r.content_length == 5 && r.body_len == 5);
    CHECK(memcmp(r.body, "hello", 5) == 0);
    check_splits(text, HTTP_REQUEST_DONE, 0);
    /* The head alone: the body buffer is asked for, then waited for. */
    http_request_init(&r, BODY_MAX);
    const char *head = "POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                       "Content-Length: 3\r\n\r\n";
    CHECK(http_request_feed(&r, (const uint8_t *)head, strlen(head), &used) ==
          HTTP_REQUEST_BODY_WANTED);
    CHECK(used == strlen(head));
    CHECK(r.expects_continue);
    CHECK(http_request_is_reading_body(&r));
    CHECK(http_request_feed(&r, (const uint8_t *)"abc", 3, &used) == HTTP_REQUEST_BODY_WANTED);
    CHECK(used == 0);
    http_request_body_buffer(&r, body, 3);
    CHECK(http_request_feed(&r, (const uint8_t *)"ab", 2, &used) == HTTP_REQUEST_NEED_MORE);
    CHECK(http_request_is_reading_body(&r));
    CHECK(http_request_feed(&r, (const uint8_t *)"cd", 2, &used) == HTTP_REQUEST_DONE);
    CHECK(used == 1 && r.body_len == 3 && memcmp(body, "abc", 3) == 0);
    CHECK(!http_request_is_reading_body(&r));
    /* An empty POST body is complete at once; GET may say length 0. */
    check_accepted("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    check_accepted("GET /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
}

static char *
repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Every bound at its limit and one past it. */
static void
test_bounds(void)
{
    static char text[3 * HTTP_REQUEST_HEAD_BYTES_MAX];
    static struct http_request r;
    /* request-target: 2047 bytes fit, 2048 do not (414). */
    char *path = repeat('a', HTTP_REQUEST_TARGET_BYTES_MAX - 2);
    (void)snprintf(text, sizeof(text), "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", path);
    check_accepted(text);
    (void)snprintf(text, sizeof(text), "GET /%sb HTTP/1.1\r\nHost: a\r\n\r\n", path);
    check_refused(text, 414);
    free(path);
    /* A request line past the line bound: 414 too. */
    char *long_line = repeat('a', HTTP_REQUEST_LINE_BYTES_MAX);
    (void)snprintf(text, sizeof(text), "GET /%s HTTP/1.1\r\n\r\n", long_line);
    check_refused(text, 414);
    free(long_line);
    /* A header line of exactly the line bound (CR included) fits; one more is 431. */
    size_t prefix = strlen("X-Long: ");
    char *value = repeat('v', HTTP_REQUEST_LINE_BYTES_MAX - 1 - prefix);
    (void)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\nX-Long: %s\r\n\r\n", value);
    check_accepted(text);
    (void)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\nX-Long: %sv\r\n\r\n", value);
    check_refused(text, 431);
    free(value);
    /* The whole head: exactly HTTP_REQUEST_HEAD_BYTES_MAX fits, one more is 431. */
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\n";
    size_t filler = HTTP_REQUEST_HEAD_BYTES_MAX - strlen(start) - strlen("X-A: \r\nX-B: \r\n\r\n");
    char *a = repeat('x', filler / 2);
    char *b = repeat('y', filler - filler / 2);
    (void)snprintf(text, sizeof(text), "%sX-A: %s\r\nX-B: %s\r\n\r\n", start, a, b);
    CHECK(strlen(text) == HTTP_REQUEST_HEAD_BYTES_MAX);
    check_accepted(text);
    (void)snprintf(text, sizeof(text), "%sX-A: %s\r\nX-B: %sy\r\n\r\n", start, a, b);
    check_refused(text, 431);
    free(a);
    free(b);
    /* Header fields: HTTP_REQUEST_FIELDS_MAX fit (Host is one), one more is 431. */
    size_t at = (size_t)snprintf(text, sizeof(text), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i < HTTP_REQUEST_FIELDS_MAX; i++) {
        at += (size_t)snprintf(text + at, sizeof(text) - at, "X-%u: 1\r\n", i);
    }
    (void)snprintf(text + at, sizeof(text) - at, "\r\n");
    check_accepted(text);
    (void)snprintf(text + at, sizeof(text) - at, "X-Last: 1\r\n\r\n");
    check_refused(text, 431);
    /* The POST body bound: BODY_MAX fits, one more is 413. */
    char *bytes = repeat('b', BODY_MAX);
    (void)snprintf(text, sizeof(text), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %u\r\n\r\n%s",
                   BODY_MAX, bytes);
    size_t used = 0;
    CHECK(feed_pieces(&r, text, strlen(text), 7, &used) == HTTP_REQUEST_DONE);
    CHECK(r.body_len == BODY_MAX);
    (void)snprintf(text, sizeof(text), "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %u\r\n\r\n%sb",
                   BODY_MAX + 1, bytes);
    check_refused(text, 413);
    free(bytes);
    /* A length too long to be a number we take. */
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n", 400);
    /* A method longer than we keep is still just a method we do not serve. */
    CHECK(feed_text(&r, "VERYLONGMETHODNAME / HTTP/1.1\r\nHost: a\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(r.method == HTTP_METHOD_OTHER && strlen(r.method_text) == HTTP_REQUEST_METHOD_BYTES_MAX - 1);
}

/* Malformed requests and the shapes request smuggling is made of. */
static void
test_refused(void)
{
    /* Line ends: CRLF only. */
    check_refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400);
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
        static struct http_request r;
        size_t used = 0;
        CHECK(feed_pieces(&r, nul, sizeof(nul) - 1, sizeof(nul), &used) == HTTP_REQUEST_FAILED);
        CHECK(r.status == 400);
    }
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 400);
    /* obs-fold (RFC 9112 5.2). */
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n\ttwo\r\n\r\n", 400);
    /* Field names: no blank before the colon (5.1), tokens only, not empty. */
    check_refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 1\r\n\r\nx", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\n: empty\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nX(y): 1\r\n\r\n", 400);
    /* Host: required in 1.1, exactly once, well formed. */
    check_refused("GET / HTTP/1.1\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
    /* Content-Length: one, digits only (no lists, no signs). */
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                  400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy",
                  400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400);
    /* Transfer-Encoding: refused, and beside a length a smuggling shape. */
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "1\r\nx\r\n0\r\n\r\n", 411);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tCHUNKED\r\n\r\n", 411);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 4\r\n\r\n0\r\n\r\n", 400);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501);
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n", 501);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411);
    /* Bodies: POST needs a length; GET and HEAD carry none. */
    check_refused("POST / HTTP/1.1\r\nHost: a\r\n\r\n", 411);
    check_refused("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 400);
    check_refused("HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", 400);
    /* Expectations other than 100-continue (RFC 9110 10.1.1). */
    check_refused("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
                  417);
    /* The request line. */
    check_refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    check_refused("GET / HTTP/0.9\r\n\r\n", 505);
    check_refused("GET / HTTP/3.0\r\n\r\n", 505);
    check_refused("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    check_refused("GET / HTTP/11\r\nHost: a\r\n\r\n", 400);
    check_refused("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
    check_refused("GET /\r\n\r\n", 400);
    check_refused("GET\r\n\r\n", 400);
    check_refused(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    check_refused("GET http://user@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    /* Another protocol on this port: refused at its first byte. */
    check_refused("\x16\x03\x01\x02\x00\x01", 400);
    check_refused("\x01garbage\r\n", 400);
    check_refused("\r\n\r\n GET / HTTP/1.1\r\n", 400);
    {
        static struct http_request t;
        size_t n = 0;
        http_request_init(&t, BODY_MAX);
        CHECK(http_request_feed(&t, (const uint8_t *)"\x16\x03\x01", 3, &n) ==
              HTTP_REQUEST_FAILED);
        CHECK(n == 1);
    }
    /* Fed again after a refusal: the same, nothing taken. */
    static struct http_request r;
    CHECK(feed_text(&r, "GET / HTTP/2.0\r\n") == HTTP_REQUEST_FAILED);
    size_t used = 9;
    CHECK(http_request_feed(&r, (const uint8_t *)"x", 1, &used) == HTTP_REQUEST_FAILED);
    CHECK(used == 0 && r.status == 505);
}

static void
test_query(void)
{
    static struct http_request r;
    char out[16];
    CHECK(feed_text(&r, "GET /p?a=1&emailaddress=x%2By+z&a=2&flag&e=%4 HTTP/1.1\r\nHost: h\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK(http_request_query_param(&r, "a", out, sizeof(out)) == 1);
    CHECK_STR(out, "1"); /* the first one */
    CHECK(http_request_query_param(&r, "emailaddress", out, sizeof(out)) == 5);
    CHECK_STR(out, "x+y z");
    CHECK(http_request_query_param(&r, "flag", out, sizeof(out)) == 0);
    CHECK_STR(out, "");
    CHECK(http_request_query_param(&r, "e", out, sizeof(out)) == -EINVAL);
    CHECK(http_request_query_param(&r, "email", out, sizeof(out)) == -ENOENT);
    CHECK(http_request_query_param(&r, "emailaddress", out, 5) == -ENOSPC);
    CHECK(http_request_query_param(&r, "emailaddress", out, 6) == 5);
    CHECK(feed_text(&r, "GET /p?n=%00&c=%0d%0a&z=%zz&ok=%41%62 HTTP/1.1\r\nHost: h\r\n\r\n") ==
          HTTP_REQUEST_DONE);
    CHECK(http_request_query_param(&r, "n", out, sizeof(out)) == -EINVAL);
    CHECK(http_request_query_param(&r, "c", out, sizeof(out)) == -EINVAL);
    CHECK(http_request_query_param(&r, "z", out, sizeof(out)) == -EINVAL);
    CHECK(http_request_query_param(&r, "ok", out, sizeof(out)) == 2);
    CHECK_STR(out, "Ab");
    CHECK(feed_text(&r, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(http_request_query_param(&r, "a", out, sizeof(out)) == -ENOENT);
    CHECK(feed_text(&r, "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n") == HTTP_REQUEST_DONE);
    CHECK(r.path_len == 2);
    CHECK(http_request_query_param(&r, "a", out, sizeof(out)) == -ENOENT);
}

static void
test_reply(void)
{
    char date[HTTP_REPLY_DATE_BYTES];
    http_reply_date(784111777, date); /* RFC 9110 5.6.7's example */
    CHECK_STR(date, "Sun, 06 Nov 1994 08:49:37 GMT");
    char out[512];
    struct http_reply reply = {
        .status = 404,
        .content_type = "text/plain; charset=utf-8",
        .body = "404 Not Found\n",
        .body_len = 14,
    };
    int n = http_reply_format(&reply, 784111777, out, sizeof(out));
    const char *want = "HTTP/1.1 404 Not Found\r\n"
                       "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "Server: toaster\r\n"
                       "Content-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: 14\r\n"
                       "Connection: close\r\n"
                       "\r\n"
                       "404 Not Found\n";
    CHECK(n > 0);
    CHECK_BYTES(out, (size_t)n, want, strlen(want));
    /* HEAD: the same header, no body. */
    reply.is_head = true;
    reply.status = 405;
    reply.extra_fields = "Allow: GET, HEAD\r\n";
    n = http_reply_format(&reply, 784111777, out, sizeof(out));
    want = "HTTP/1.1 405 Method Not Allowed\r\n"
           "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
           "Server: toaster\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "Content-Length: 14\r\n"
           "Connection: close\r\n"
           "Allow: GET, HEAD\r\n"
           "\r\n";
    CHECK(n > 0);
    CHECK_BYTES(out, (size_t)n, want, strlen(want));
    /* Extra fields must be whole CRLF lines; no header injection. */
    reply.extra_fields = "Allow: GET";
    CHECK(http_reply_format(&reply, 0, out, sizeof(out)) == -EINVAL);
    reply.extra_fields = "A: b\r\n\r\nbody\r\n";
    CHECK(http_reply_format(&reply, 0, out, sizeof(out)) == -EINVAL);
    reply.extra_fields = "A: b\nC: d\r\n";
    CHECK(http_reply_format(&reply, 0, out, sizeof(out)) == -EINVAL);
    reply.extra_fields = NULL;
    reply.content_type = "text/plain\r\nX: y";
    CHECK(http_reply_format(&reply, 0, out, sizeof(out)) == -EINVAL);
    /* Too small a buffer: -ENOSPC, at the exact size it fits. */
    reply.content_type = "text/plain";
    reply.is_head = false;
    n = http_reply_format(&reply, 0, out, sizeof(out));
    CHECK(n > 0);
    CHECK(http_reply_format(&reply, 0, out, (size_t)n) == n);
    CHECK(http_reply_format(&reply, 0, out, (size_t)n - 1) == -ENOSPC);
    CHECK_STR(http_reply_reason(431), "Request Header Fields Too Large");
    CHECK_STR(http_reply_reason(299), "Unknown");
}

int
main(void)
{
    test_get();
    test_rfc9112_examples();
    test_post();
    test_bounds();
    test_refused();
    test_query();
    test_reply();
    UNIT_DONE();
}
