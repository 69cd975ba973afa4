/*
 * tests/fuzz/fuzz_imap_text.c - libFuzzer harness for imap_text (RFC 2047
 * header decoding, charset conversion, case folding, the streaming finder)
 * and imap_decode (base64, quoted-printable).
 *
 * Input: three header bytes, then a needle of byte-2 length (cut at the
 * input end), then the text.
 *   byte 0: the charset (utf-8, iso-8859-1, windows-1252, koi8-r,
 *           shift_jis, an unknown name, us-ascii, the empty name) and the
 *           small output room (bits 3-7, 0..31 bytes);
 *   byte 1: seed of the chunk sizes for the finder and the converter;
 *   byte 2: the needle length.
 * The text is copied to an exact-size heap buffer so ASan sees any read
 * outside it.
 *
 * Properties checked: decoded headers, converted and folded text are
 * well-formed UTF-8; into a small room each gives a prefix of the large
 * result cut on a character boundary (no more than 3 bytes short);
 * imap_text_to_utf8() fails only for the unknown charset, and a converter
 * fed in random pieces gives the same bytes as the one-shot conversion;
 * folding is idempotent and at most 3 bytes per input byte; the finder fed
 * in random pieces and ended agrees with imap_text_contains() on the
 * whole text, and both with a plain search of the folded text; each decoder's plain
 * and streaming forms give the same length and bytes, the plain one
 * succeeds with exactly the room the result needs and fails with one byte
 * less. A broken property aborts.
 *
 * Build: see tests/meson.build (-Dfuzz=true).
 */
#define _GNU_SOURCE /* memmem */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/span.h"
#include "core/utf8.h"
#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_text.h"
#include "tests/fuzz/fuzz_check.h"

#define HEADER_BYTES 3
#define CHARSET_UNKNOWN 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const charsets[8] = {
    "utf-8", "ISO-8859-1", "windows-1252", "KOI8-R", "Shift_JIS", "x-no-such-charset",
    "us-ascii", "",
};

static struct imap_text_finder finder;

struct rng {
    uint32_t state;
};

/* A piece size 1..max. */
static size_t
rng_piece(struct rng *r, size_t max)
{
    r->state = r->state * 1103515245u + 12345u;
    return 1 + (size_t)((r->state >> 16) % max);
}

/* small[0..small_len) is big[0..big_len) cut on a character boundary to
 * fit room bytes. */
static void
check_cut(const char *small, size_t small_len, const char *big, size_t big_len, size_t room)
{
    FUZZ_CHECK(small_len <= room);
    FUZZ_CHECK(small_len <= big_len);
    FUZZ_CHECK(memcmp(small, big, small_len) == 0);
    if (big_len <= room) {
        FUZZ_CHECK(small_len == big_len);
    } else {
        FUZZ_CHECK(small_len + 3 >= room);
        /* The next character starts right after the cut. */
        FUZZ_CHECK(((unsigned char)big[small_len] & 0xc0) != 0x80);
    }
}

static void
check_header(const char *text, size_t len, size_t room)
{
    size_t big_bytes = 3 * len + 16;
    char *big = malloc(big_bytes);
    char *small = malloc(room + 1);
    FUZZ_CHECK(big != NULL && small != NULL);
    size_t n = imap_text_decode_header(text, len, big, big_bytes);
    FUZZ_CHECK(n < big_bytes);
    FUZZ_CHECK(utf8_is_valid(big, n));
    small[room] = 0x5a;
    size_t m = imap_text_decode_header(text, len, small, room);
    FUZZ_CHECK(small[room] == 0x5a);
    check_cut(small, m, big, n, room);
    free(small);
    free(big);
}

static void
check_convert(struct span charset, bool is_unknown, const char *text, size_t len, size_t room,
              struct rng *rng)
{
    size_t big_bytes = 3 * len + 16;
    char *big = malloc(big_bytes);
    char *small = malloc(room + 1);
    char *pieces = malloc(big_bytes);
    FUZZ_CHECK(big != NULL && small != NULL && pieces != NULL);
    long n = imap_text_to_utf8(charset, text, len, big, big_bytes);
    if (is_unknown) {
        FUZZ_CHECK(n == -1);
    } else {
        FUZZ_CHECK(n >= 0 && (size_t)n < big_bytes);
        FUZZ_CHECK(utf8_is_valid(big, (size_t)n));
        small[room] = 0x5a;
        long m = imap_text_to_utf8(charset, text, len, small, room);
        FUZZ_CHECK(small[room] == 0x5a);
        FUZZ_CHECK(m >= 0);
        check_cut(small, (size_t)m, big, (size_t)n, room);

        /* The same through a converter fed in pieces; bytes a piece leaves
         * (an incomplete sequence) are passed again with the next. */
        struct imap_text_conv conv;
        FUZZ_CHECK(imap_text_conv_open(&conv, charset) == 0);
        size_t pos = 0;
        size_t end = 0;
        size_t out = 0;
        size_t rounds = 0;
        for (;;) {
            /* end grows by at least one byte a round until the last. */
            FUZZ_CHECK(++rounds <= len + 1);
            size_t step = rng_piece(rng, 64);
            end = step < len - end ? end + step : len;
            bool is_final = end == len;
            size_t used = 0;
            size_t w = imap_text_conv_run(&conv, text + pos, end - pos, is_final, pieces + out,
                                          big_bytes - out, &used);
            FUZZ_CHECK(used <= end - pos);
            FUZZ_CHECK(w <= big_bytes - out);
            out += w;
            pos += used;
            if (is_final) {
                FUZZ_CHECK(pos == len);
                break;
            }
        }
        imap_text_conv_close(&conv);
        FUZZ_CHECK(out == (size_t)n);
        FUZZ_CHECK(memcmp(pieces, big, out) == 0);
    }
    free(pieces);
    free(small);
    free(big);
}

/* Folds text into a new heap buffer of 3 * len bytes; checks the fold. */
static char *
check_fold(const char *text, size_t len, size_t room, size_t *len_out)
{
    size_t bytes = 3 * len + 1;
    char *folded = malloc(bytes);
    char *again = malloc(bytes);
    char *small = malloc(room + 1);
    FUZZ_CHECK(folded != NULL && again != NULL && small != NULL);
    size_t n = imap_text_fold(text, len, folded, bytes);
    FUZZ_CHECK(n <= 3 * len);
    FUZZ_CHECK(utf8_is_valid(folded, n));
    size_t n2 = imap_text_fold(folded, n, again, bytes);
    FUZZ_CHECK(n2 == n && memcmp(again, folded, n) == 0);
    small[room] = 0x5a;
    size_t m = imap_text_fold(text, len, small, room);
    FUZZ_CHECK(small[room] == 0x5a);
    check_cut(small, m, folded, n, room);
    free(small);
    free(again);
    *len_out = n;
    return folded;
}

static void
check_finder(const char *needle_raw, size_t needle_raw_len, const char *text, size_t len,
             const char *folded_text, size_t folded_len, struct rng *rng)
{
    char needle[IMAP_TEXT_NEEDLE_BYTES_MAX];
    size_t needle_len = imap_text_fold(needle_raw, needle_raw_len, needle, sizeof(needle));
    FUZZ_CHECK(needle_len <= sizeof(needle));
    bool whole = imap_text_contains(text, len, needle, needle_len);
    imap_text_finder_init(&finder, needle, needle_len);
    bool is_found = false;
    size_t pos = 0;
    while (pos < len) {
        size_t n = rng_piece(rng, (rng->state & 0x100) ? 7 : 300);
        n = n < len - pos ? n : len - pos;
        /* Each piece in its own exact-size copy so ASan sees reads past it. */
        char *piece = malloc(n);
        FUZZ_CHECK(piece != NULL);
        memcpy(piece, text + pos, n);
        bool r = imap_text_finder_feed(&finder, piece, n);
        free(piece);
        FUZZ_CHECK(!is_found || r); /* once found, stays found */
        is_found = r;
        pos += n;
    }
    if (len == 0) {
        is_found = imap_text_finder_feed(&finder, text, 0);
    }
    bool is_found_end = imap_text_finder_end(&finder);
    FUZZ_CHECK(!is_found || is_found_end); /* once found, stays found */
    FUZZ_CHECK(imap_text_finder_end(&finder) == is_found_end); /* a second end changes nothing */
    FUZZ_CHECK(is_found_end == whole);
    /* A plain search of the folded text agrees, a truncated character at
     * the very end included (U+FFFD on both sides, imap_text-1). */
    bool plain = needle_len == 0 || memmem(folded_text, folded_len, needle, needle_len) != NULL;
    FUZZ_CHECK(plain == whole);
}

struct collect {
    char  *buf;
    size_t cap;
    size_t len;
};

static void
collect_emit(void *ctx, const char *bytes, size_t len)
{
    struct collect *c = ctx;
    FUZZ_CHECK(len <= IMAP_DECODE_CHUNK_BYTES);
    FUZZ_CHECK(len <= c->cap - c->len);
    memcpy(c->buf + c->len, bytes, len);
    c->len += len;
}

typedef long plain_fn(const char *in, size_t len, char *out, size_t out_bytes);
typedef long stream_fn(const char *in, size_t len, imap_decode_emit_fn *emit, void *ctx);

static void
check_decoder(plain_fn *plain, stream_fn *stream, bool can_fail, const char *text, size_t len)
{
    char *out = malloc(len + 1);
    char *streamed = malloc(len + 1);
    FUZZ_CHECK(out != NULL && streamed != NULL);
    long n = plain(text, len, out, len);
    FUZZ_CHECK(n >= -1 && n <= (long)len);
    struct collect c = { .buf = streamed, .cap = len, .len = 0 };
    long s = stream(text, len, collect_emit, &c);
    FUZZ_CHECK(s == n);
    if (!can_fail) {
        FUZZ_CHECK(n >= 0);
    }
    if (n >= 0) {
        FUZZ_CHECK(c.len == (size_t)n);
        FUZZ_CHECK(memcmp(out, streamed, (size_t)n) == 0);
        /* Exactly the room needed works (in an exact-size buffer). */
        char *exact = malloc(n > 0 ? (size_t)n : 1);
        FUZZ_CHECK(exact != NULL);
        FUZZ_CHECK(plain(text, len, exact, (size_t)n) == n);
        FUZZ_CHECK(memcmp(exact, out, (size_t)n) == 0);
        if (n > 0) {
            FUZZ_CHECK(plain(text, len, exact, (size_t)n - 1) == -1);
        }
        free(exact);
    }
    free(streamed);
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_BYTES) {
        return 0;
    }
    size_t charset_index = data[0] & 7;
    size_t room = data[0] >> 3;
    struct rng rng = { .state = (uint32_t)data[1] * 2654435761u + 1 };
    size_t rest_len = size - HEADER_BYTES;
    size_t needle_raw_len = data[2] < rest_len ? data[2] : rest_len;
    size_t len = rest_len - needle_raw_len;

    char *needle_raw = malloc(needle_raw_len > 0 ? needle_raw_len : 1);
    char *text = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(needle_raw != NULL && text != NULL);
    memcpy(needle_raw, data + HEADER_BYTES, needle_raw_len);
    memcpy(text, data + HEADER_BYTES + needle_raw_len, len);

    check_header(text, len, room);
    const char *name = charsets[charset_index];
    check_convert(span_make(name, strlen(name)), charset_index == CHARSET_UNKNOWN, text, len,
                  room, &rng);
    size_t folded_len;
    char *folded = check_fold(text, len, room, &folded_len);
    check_finder(needle_raw, needle_raw_len, text, len, folded, folded_len, &rng);
    free(folded);
    check_decoder(imap_decode_base64, imap_decode_base64_stream, true, text, len);
    check_decoder(imap_decode_qp, imap_decode_qp_stream, false, text, len);

    free(text);
    free(needle_raw);
    return 0;
}
