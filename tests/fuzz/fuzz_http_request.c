/*
 * tests/fuzz/fuzz_http_request.c - requests from the network
 * (proto/http/http_request): any bytes, fed whole and then in two pieces
 * split where the first byte says, give the same outcome and status;
 * nothing is taken beyond what was offered, no body grows past its
 * length, the target and host are NUL-terminated within their buffers,
 * and the query decoder stays inside its output.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/http/http_request.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_MAX 1024u

/* Feed data[0..size) in two pieces at split, lending body when asked. */
static int
run(struct http_request *r, const uint8_t *data, size_t size, size_t split, char *body)
{
    http_request_init(r, BODY_MAX);
    size_t at = 0;
    int rc = HTTP_REQUEST_NEED_MORE;
    for (int round = 0; round < 6; round++) {
        size_t end = at < split ? split : size;
        size_t used = 0;
        rc = http_request_feed(r, data + at, end - at, &used);
        FUZZ_CHECK(used <= end - at);
        at += used;
        if (rc == HTTP_REQUEST_BODY_WANTED) {
            FUZZ_CHECK(r->content_length > 0 && r->content_length <= BODY_MAX);
            http_request_body_buffer(r, body, BODY_MAX);
            continue;
        }
        if (rc != HTTP_REQUEST_NEED_MORE || at == size) {
            break;
        }
    }
    FUZZ_CHECK(r->body_len <= r->content_length);
    FUZZ_CHECK(memchr(r->target, '\0', sizeof(r->target)) != NULL);
    FUZZ_CHECK(memchr(r->host, '\0', sizeof(r->host)) != NULL);
    if (rc == HTTP_REQUEST_FAILED) {
        FUZZ_CHECK(r->status >= 400 && r->status <= 505 && r->reason != NULL);
    }
    if (rc == HTTP_REQUEST_DONE) {
        FUZZ_CHECK(r->path_len <= strlen(r->target));
        for (const char *h = r->host; *h != '\0'; h++) {
            FUZZ_CHECK(!(*h >= 'A' && *h <= 'Z'));
        }
        char value[32];
        int n = http_request_query_param(r, "emailaddress", value, sizeof(value));
        FUZZ_CHECK(n < (int)sizeof(value));
        if (n >= 0) {
            FUZZ_CHECK(strlen(value) == (size_t)n);
        }
    }
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_request a;
    static struct http_request b;
    static char body_a[BODY_MAX];
    static char body_b[BODY_MAX];
    int rc_a = run(&a, data, size, size, body_a);
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    int rc_b = run(&b, data, size, split, body_b);
    FUZZ_CHECK(rc_a == rc_b);
    if (rc_a == HTTP_REQUEST_FAILED) {
        FUZZ_CHECK(a.status == b.status);
    }
    if (rc_a == HTTP_REQUEST_DONE) {
        FUZZ_CHECK(a.method == b.method && strcmp(a.target, b.target) == 0 &&
                   strcmp(a.host, b.host) == 0 && a.body_len == b.body_len &&
                   memcmp(body_a, body_b, a.body_len) == 0);
    }
    return 0;
}
