/*
 * tests/fuzz/fuzz_smtp_body.c - libFuzzer harness for the DATA and BDAT
 * body decoders.
 *
 * The first two input bytes choose how to feed the rest: an output room of
 * 2..9 bytes, a first split position, and a chunk size for what follows.
 * Each decoder runs once whole with plenty of room and once split with the
 * tiny room; both must give the same bytes, in_used and counters. The DATA
 * output must also equal a plain line-by-line reference decoder, contain no
 * bare LF, and end DATA only on a real <CRLF>.<CRLF> (or "." CRLF at the
 * very start). Chunks and output buffers are exact-size heap copies so ASan
 * sees any access outside them. A broken property aborts.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   proto/smtp/smtp_body.c core/assertions.c tests/fuzz/fuzz_smtp_body.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_body.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
    uint8_t *out;
    size_t   out_len;
    size_t   in_used;
    bool     is_done;
    uint64_t bare_lf_count;
    uint64_t bare_cr_count;
    uint64_t out_total;
};

static void *
xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    FUZZ_CHECK(p != NULL);
    return p;
}

static void
run_append(struct run *r, const uint8_t *bytes, size_t n)
{
    if (n > 0) {
        memcpy(r->out + r->out_len, bytes, n);
        r->out_len += n;
    }
}

static size_t
chunk_end(size_t pos, size_t len, size_t first_cut, size_t step)
{
    if (pos < first_cut) {
        return first_cut < len ? first_cut : len;
    }
    return len - pos <= step ? len : pos + step;
}

static void
run_data(const uint8_t *in, size_t len, size_t first_cut, size_t step, size_t out_bytes,
         struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    uint8_t *out = xmalloc(out_bytes);
    struct smtp_data_decoder decoder;
    smtp_data_decoder_init(&decoder);

    size_t pos = 0;
    while (pos < len && !r->is_done) {
        size_t end = chunk_end(pos, len, first_cut, step);
        size_t chunk_len = end - pos;
        uint8_t *chunk = xmalloc(chunk_len);
        memcpy(chunk, in + pos, chunk_len);
        size_t off = 0;
        while (off < chunk_len) {
            size_t used = 0;
            size_t out_len = 0;
            enum smtp_body_status status = smtp_data_decode(&decoder, chunk + off, chunk_len - off,
                                                            &used, out, out_bytes, &out_len);
            FUZZ_CHECK(used <= chunk_len - off);
            FUZZ_CHECK(out_len <= out_bytes);
            /* Progress: input and at least 2 bytes of room do something. */
            FUZZ_CHECK(status == SMTP_BODY_DONE || used > 0 || out_len > 0);
            run_append(r, out, out_len);
            off += used;
            if (status == SMTP_BODY_DONE) {
                r->is_done = true;
                break;
            }
        }
        pos += off;
        free(chunk);
    }
    r->in_used = pos;
    r->bare_lf_count = decoder.bare_lf_count;
    r->bare_cr_count = decoder.bare_cr_count;
    r->out_total = decoder.out_total;
    free(out);
}

static void
run_bdat(const uint8_t *in, size_t len, size_t first_cut, size_t step, size_t out_bytes,
         struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    uint8_t *out = xmalloc(out_bytes);
    struct smtp_bdat_decoder decoder;
    smtp_bdat_decoder_init(&decoder);

    size_t pos = 0;
    while (pos < len) {
        size_t end = chunk_end(pos, len, first_cut, step);
        size_t chunk_len = end - pos;
        uint8_t *chunk = xmalloc(chunk_len);
        memcpy(chunk, in + pos, chunk_len);
        size_t off = 0;
        while (off < chunk_len) {
            size_t used = 0;
            size_t out_len = 0;
            smtp_bdat_decode(&decoder, chunk + off, chunk_len - off, &used, out, out_bytes,
                             &out_len);
            FUZZ_CHECK(used <= chunk_len - off);
            FUZZ_CHECK(out_len <= out_bytes);
            FUZZ_CHECK(used > 0 || out_len > 0);
            run_append(r, out, out_len);
            off += used;
        }
        pos += off;
        free(chunk);
    }
    run_append(r, out, smtp_bdat_finish(&decoder, out, out_bytes));
    r->in_used = pos;
    r->bare_lf_count = decoder.bare_lf_count;
    r->bare_cr_count = decoder.bare_cr_count;
    r->out_total = decoder.out_total;
    free(out);
}

/* The DATA rules of smtp_body.h applied line by line to the whole input;
 * bytes the streaming decoder still holds at the end are left out. */
static void
reference_data(const uint8_t *in, size_t len, struct run *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    size_t pos = 0;
    bool is_after_real = true;
    while (pos < len) {
        const uint8_t *lf = memchr(in + pos, '\n', len - pos);
        if (lf == NULL) {
            const uint8_t *rest = in + pos;
            size_t rest_len = len - pos;
            if ((rest_len == 1 && rest[0] == '.') ||
                (rest_len == 2 && rest[0] == '.' && rest[1] == '\r')) {
                break;
            }
            if (rest[0] == '.') {
                rest++;
                rest_len--;
            }
            if (rest_len > 0 && rest[rest_len - 1] == '\r') {
                rest_len--;
            }
            run_append(r, rest, rest_len);
            break;
        }
        size_t lf_index = (size_t)(lf - in);
        bool is_real = lf_index > pos && in[lf_index - 1] == '\r';
        const uint8_t *content = in + pos;
        size_t content_len = (is_real ? lf_index - 1 : lf_index) - pos;
        if (content_len == 1 && content[0] == '.') {
            if (is_real && is_after_real) {
                r->is_done = true;
                pos = lf_index + 1;
                break;
            }
        } else if (content_len > 0 && content[0] == '.') {
            content++;
            content_len--;
        }
        run_append(r, content, content_len);
        run_append(r, (const uint8_t *)"\r\n", 2);
        is_after_real = is_real;
        pos = lf_index + 1;
    }
    size_t limit = r->is_done ? pos : len;
    r->in_used = limit;
    for (size_t k = 0; k < limit; k++) {
        if (in[k] == '\n' && (k == 0 || in[k - 1] != '\r')) {
            r->bare_lf_count++;
        }
        if (in[k] == '\r' && k + 1 < limit && in[k + 1] != '\n') {
            r->bare_cr_count++;
        }
    }
    r->out_total = r->out_len;
}

static void
check_same(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->out_len == b->out_len);
    FUZZ_CHECK(a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0);
    FUZZ_CHECK(a->in_used == b->in_used);
    FUZZ_CHECK(a->is_done == b->is_done);
    FUZZ_CHECK(a->bare_lf_count == b->bare_lf_count);
    FUZZ_CHECK(a->bare_cr_count == b->bare_cr_count);
    FUZZ_CHECK(a->out_total == b->out_total);
}

static void
check_no_bare_lf(const struct run *r)
{
    for (size_t k = 0; k < r->out_len; k++) {
        if (r->out[k] == '\n') {
            FUZZ_CHECK(k > 0 && r->out[k - 1] == '\r');
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    size_t out_bytes = 2 + data[0] % 8;
    size_t step = 1 + (size_t)(data[0] >> 3);
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    size_t first_cut = len * data[1] / 255;

    struct run whole;
    struct run split;
    struct run ref;
    run_data(in, len, len, len + 1, 2 * len + 2, &whole);
    run_data(in, len, first_cut, step, out_bytes, &split);
    reference_data(in, len, &ref);
    check_same(&whole, &split);
    check_same(&whole, &ref);
    check_no_bare_lf(&whole);
    FUZZ_CHECK(whole.out_total == whole.out_len);
    FUZZ_CHECK(whole.in_used <= len);
    if (whole.is_done) {
        /* Only all five real bytes end DATA ("." CRLF at the start). */
        size_t u = whole.in_used;
        FUZZ_CHECK((u == 3 && memcmp(in, ".\r\n", 3) == 0) ||
                   (u >= 5 && memcmp(in + u - 5, "\r\n.\r\n", 5) == 0));
    } else {
        FUZZ_CHECK(whole.in_used == len);
    }
    free(whole.out);
    free(split.out);
    free(ref.out);

    run_bdat(in, len, len, len + 1, 2 * len + 2, &whole);
    run_bdat(in, len, first_cut, step, out_bytes, &split);
    check_same(&whole, &split);
    check_no_bare_lf(&whole);
    FUZZ_CHECK(whole.in_used == len);
    FUZZ_CHECK(whole.out_len == len + whole.bare_lf_count);
    FUZZ_CHECK(whole.out_total == whole.out_len);
    free(whole.out);
    free(split.out);
    return 0;
}
