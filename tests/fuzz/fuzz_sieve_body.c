/*
 * tests/fuzz/fuzz_sieve_body.c - libFuzzer harness for the text the Sieve
 * "body" test matches (filters/sieve_body), which walks the MIME structure
 * of any message a sender wrote.
 *
 * The input is a message: the header block up to the first empty line,
 * then the body. Properties, for :raw, :text and :content with several
 * type lists: the walk returns 0 or -E2BIG (never another error: the
 * callback never fails); :raw gives exactly the body, once; the bytes
 * handed over stay within SIEVE_BODY_DECODED_BYTES_MAX; header and body
 * from exact-size separate heap copies (so ASan sees any read past them)
 * give the same pieces as one adjacent buffer; and a callback that stops
 * at the first piece makes the walk return 1 after exactly one piece.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/sieve_body.c proto/imap/imap_mime.c proto/imap/imap_rfc822.c \
 *   proto/imap/imap_quote.c proto/imap/imap_decode.c proto/imap/imap_text.c \
 *   core/assertions.c tests/fuzz/fuzz_sieve_body.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_body.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a walk saw: piece count, bytes and an order-sensitive hash. */
struct seen {
    size_t count;
    size_t bytes;
    uint64_t hash;
    bool is_stopping;
};

static int
see(void *ctx, const char *text, size_t len)
{
    struct seen *s = ctx;
    FUZZ_CHECK(text != NULL);
    s->count++;
    s->bytes += len;
    uint64_t h = s->hash ^ (0x9e3779b97f4a7c15ULL * (s->count + len));
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ULL;
    }
    s->hash = h;
    return s->is_stopping ? 1 : 0;
}

static void
check_walk(const char *whole, size_t header_len, const char *header, const char *body,
           size_t body_len, enum sieve_body_transform transform,
           const struct sieve_string *types, size_t type_count)
{
    struct seen adjacent = {0};
    struct seen apart = {0};
    int rc = sieve_body_walk(whole, header_len, whole + header_len, body_len, transform, types,
                             type_count, see, &adjacent);
    FUZZ_CHECK(rc == 0 || rc == -E2BIG);
    if (rc == 0 && transform != SIEVE_BODY_RAW) {
        FUZZ_CHECK(adjacent.bytes <= SIEVE_BODY_DECODED_BYTES_MAX);
    }
    int rc2 = sieve_body_walk(header, header_len, body, body_len, transform, types, type_count,
                              see, &apart);
    FUZZ_CHECK(rc2 == rc);
    FUZZ_CHECK(apart.count == adjacent.count);
    FUZZ_CHECK(apart.bytes == adjacent.bytes);
    FUZZ_CHECK(apart.hash == adjacent.hash);
    if (transform == SIEVE_BODY_RAW) {
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(adjacent.count == 1);
        FUZZ_CHECK(adjacent.bytes == body_len);
    }
    if (rc == 0 && adjacent.count > 0) {
        struct seen first = {.is_stopping = true};
        FUZZ_CHECK(sieve_body_walk(header, header_len, body, body_len, transform, types,
                                   type_count, see, &first) == 1);
        FUZZ_CHECK(first.count == 1);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *whole = malloc(size > 0 ? size : 1);
    if (whole == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(whole, data, size);
    }
    /* The header block ends after the first empty line (LF or CRLF). */
    size_t header_len = size;
    for (size_t i = 0; i < size; i++) {
        if (whole[i] != '\n') {
            continue;
        }
        if (i + 1 < size && whole[i + 1] == '\n') {
            header_len = i + 2;
            break;
        }
        if (i + 2 < size && whole[i + 1] == '\r' && whole[i + 2] == '\n') {
            header_len = i + 3;
            break;
        }
    }
    size_t body_len = size - header_len;
    char *header = malloc(header_len > 0 ? header_len : 1);
    char *body = malloc(body_len > 0 ? body_len : 1);
    if (header == NULL || body == NULL) {
        free(header);
        free(body);
        free(whole);
        return 0;
    }
    memcpy(header, whole, header_len);
    if (body_len > 0) {
        memcpy(body, whole + header_len, body_len);
    }

    static const struct sieve_string all[] = {{.text = (char *)"", .len = 0}};
    static const struct sieve_string mixed[] = {
        {.text = (char *)"multipart", .len = 9},
        {.text = (char *)"message/rfc822", .len = 14},
        {.text = (char *)"text/html", .len = 9},
        {.text = (char *)"application", .len = 11},
    };
    check_walk(whole, header_len, header, body, body_len, SIEVE_BODY_RAW, NULL, 0);
    check_walk(whole, header_len, header, body, body_len, SIEVE_BODY_TEXT, NULL, 0);
    check_walk(whole, header_len, header, body, body_len, SIEVE_BODY_CONTENT, all, 1);
    check_walk(whole, header_len, header, body, body_len, SIEVE_BODY_CONTENT, mixed, 4);

    free(header);
    free(body);
    free(whole);
    return 0;
}
