/*
 * tests/fuzz/fuzz_http_response.c - HTTP responses from the network
 * (proto/http/http_response): any bytes, fed whole and then in two
 * pieces split where the first byte says, give the same result, never
 * write past the body buffer, and never take more than offered.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http/http_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BODY_MAX 4096u

static int
run(const uint8_t *data, size_t size, size_t split, char *body, size_t *body_len, int *status)
{
    static struct http_response r;
    http_response_init(&r, body, BODY_MAX);
    size_t used = 0;
    int rc = http_response_feed(&r, data, split, &used);
    if (used > split) {
        abort();
    }
    if (rc == 0 && used == split) {
        size_t more = 0;
        rc = http_response_feed(&r, data + split, size - split, &more);
        if (more > size - split) {
            abort();
        }
        if (rc == 0 && more == size - split) {
            rc = http_response_eof(&r);
        }
    }
    if (r.body_len > BODY_MAX) {
        abort();
    }
    *body_len = r.body_len;
    *status = r.status;
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char body_a[BODY_MAX];
    static char body_b[BODY_MAX];
    size_t len_a = 0, len_b = 0;
    int status_a = 0, status_b = 0;
    int rc_a = run(data, size, size, body_a, &len_a, &status_a);
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    int rc_b = run(data, size, split, body_b, &len_b, &status_b);
    if (rc_a != rc_b) {
        abort();
    }
    if (rc_a == 1 && (len_a != len_b || status_a != status_b || memcmp(body_a, body_b, len_a) != 0)) {
        abort();
    }
    return 0;
}
