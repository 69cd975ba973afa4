/*
 * tests/unit/test_smtp_body.c - the DATA and BDAT body decoders.
 *
 * Each table case runs whole, then split at every byte boundary, then one
 * byte at a time, then with only 2, 3 and 7 bytes of output room, and every
 * run must give the same bytes, the same in_used and the same counters.
 * Input chunks and output buffers are exact-size heap copies so ASan sees
 * any access outside them. Smuggling forms (<LF>.<LF>, <CR>.<CRLF> ...)
 * must never end DATA. Finally every string up to 8 bytes over
 * {'.', CR, LF, 'a'} and random longer ones are compared with a plain
 * line-by-line reference decoder written from the rules in smtp_body.h.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_body.h"
#include "tests/unit/unit.h"

#define L(s) (s), (sizeof(s) - 1)

#define STEP_ALL SIZE_MAX

struct run_result {
    uint8_t *out;
    size_t   out_len;
    size_t   in_used;
    bool     is_done;
    bool     is_stuck;   /* a call with input and room made no progress */
    uint64_t bare_lf_count;
    uint64_t bare_cr_count;
    uint64_t out_total;
};

static void *
xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        abort();
    }
    return p;
}

static void
result_append(struct run_result *r, const uint8_t *bytes, size_t n)
{
    if (n > 0) {
        memcpy(r->out + r->out_len, bytes, n);
        r->out_len += n;
    }
}

/* Next chunk end: first at first_cut, then every step bytes. */
static size_t
chunk_end(size_t pos, size_t len, size_t first_cut, size_t step)
{
    if (pos < first_cut) {
        return first_cut < len ? first_cut : len;
    }
    return len - pos <= step ? len : pos + step;
}

/* Feed in[0..len) to a DATA decoder in chunks, each chunk offered again
 * until it is used up (the output may fill first), stopping at DONE. */
static void
run_data(const uint8_t *in, size_t len, size_t first_cut, size_t step, size_t out_bytes,
         struct run_result *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    uint8_t *out = xmalloc(out_bytes);
    struct smtp_data_decoder decoder;
    smtp_data_decoder_init(&decoder);

    size_t pos = 0;
    while (pos < len && !r->is_done && !r->is_stuck) {
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
            if (used > chunk_len - off || out_len > out_bytes) {
                r->is_stuck = true;
                break;
            }
            result_append(r, out, out_len);
            off += used;
            if (status == SMTP_BODY_DONE) {
                r->is_done = true;
                break;
            }
            if (used == 0 && out_len == 0) {
                r->is_stuck = true;
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

/* The same for BDAT; smtp_bdat_finish() at the end, as after BDAT LAST. */
static void
run_bdat(const uint8_t *in, size_t len, size_t first_cut, size_t step, size_t out_bytes,
         struct run_result *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    uint8_t *out = xmalloc(out_bytes);
    struct smtp_bdat_decoder decoder;
    smtp_bdat_decoder_init(&decoder);

    size_t pos = 0;
    while (pos < len && !r->is_stuck) {
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
            if (used > chunk_len - off || out_len > out_bytes || (used == 0 && out_len == 0)) {
                r->is_stuck = true;
                break;
            }
            result_append(r, out, out_len);
            off += used;
        }
        pos += off;
        free(chunk);
    }
    size_t n = smtp_bdat_finish(&decoder, out, out_bytes);
    result_append(r, out, n);
    /* A second finish has nothing left to flush. */
    CHECK(smtp_bdat_finish(&decoder, out, out_bytes) == 0);
    r->in_used = pos;
    r->bare_lf_count = decoder.bare_lf_count;
    r->bare_cr_count = decoder.bare_cr_count;
    r->out_total = decoder.out_total;
    free(out);
}

/* Reference DATA decoder: whole input, line by line, straight from the
 * rules in smtp_body.h. Bytes the streaming decoder still holds (a CR, a
 * line-start "." or ".\r") are not produced, as there. */
static void
reference_data(const uint8_t *in, size_t len, struct run_result *r)
{
    memset(r, 0, sizeof(*r));
    r->out = xmalloc(2 * len + 2);
    size_t pos = 0;
    bool is_after_real = true;
    while (pos < len) {
        const uint8_t *lf = memchr(in + pos, '\n', len - pos);
        if (lf == NULL) {
            /* Unfinished last line. */
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
            result_append(r, rest, rest_len);
            break;
        }
        size_t lf_index = (size_t)(lf - in);
        bool is_real = lf_index > pos && in[lf_index - 1] == '\r';
        size_t content_end = is_real ? lf_index - 1 : lf_index;
        const uint8_t *content = in + pos;
        size_t content_len = content_end - pos;
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
        result_append(r, content, content_len);
        result_append(r, (const uint8_t *)"\r\n", 2);
        is_after_real = is_real;
        pos = lf_index + 1;
    }
    size_t limit = r->is_done ? pos : len;
    r->in_used = r->is_done ? pos : len;
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

static bool
results_equal(const struct run_result *a, const struct run_result *b)
{
    return a->out_len == b->out_len &&
           (a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0) &&
           a->in_used == b->in_used && a->is_done == b->is_done && !a->is_stuck && !b->is_stuck &&
           a->bare_lf_count == b->bare_lf_count && a->bare_cr_count == b->bare_cr_count &&
           a->out_total == b->out_total;
}

static void
report_mismatch(const char *what, const uint8_t *in, size_t len, const struct run_result *got,
                const struct run_result *want)
{
    fprintf(stderr, "%s: input \"", what);
    unit_print_escaped(in, len);
    fprintf(stderr, "\"\n  got  \"");
    unit_print_escaped(got->out, got->out_len);
    fprintf(stderr, "\" used %zu done %d stuck %d lf %" PRIu64 " cr %" PRIu64 " total %" PRIu64
                    "\n  want \"",
            got->in_used, got->is_done, got->is_stuck, got->bare_lf_count, got->bare_cr_count,
            got->out_total);
    unit_print_escaped(want->out, want->out_len);
    fprintf(stderr, "\" used %zu done %d lf %" PRIu64 " cr %" PRIu64 "\n", want->in_used,
            want->is_done, want->bare_lf_count, want->bare_cr_count);
}

/* Run in every way the header allows and compare each with want. Returns
 * the number of mismatches (each already reported). */
typedef void (*runner_fn)(const uint8_t *, size_t, size_t, size_t, size_t, struct run_result *);

static unsigned
run_all_ways(runner_fn runner, const uint8_t *in, size_t len, const struct run_result *want,
             bool is_every_split)
{
    static const size_t tiny[] = { 2, 3, 7 };
    unsigned failures = 0;
    size_t big = 2 * len + 2;
    struct run_result got;

#define COMPARE(what)                                                                    \
    do {                                                                                 \
        if (!results_equal(&got, want)) {                                                \
            report_mismatch((what), in, len, &got, want);                                \
            failures++;                                                                  \
        }                                                                                \
        free(got.out);                                                                   \
    } while (0)

    runner(in, len, len, STEP_ALL, big, &got);
    COMPARE("whole");
    if (is_every_split) {
        for (size_t k = 0; k <= len; k++) {
            runner(in, len, k, STEP_ALL, big, &got);
            COMPARE("split");
        }
    }
    runner(in, len, 0, 1, big, &got);
    COMPARE("byte at a time");
    for (size_t t = 0; t < sizeof(tiny) / sizeof(tiny[0]); t++) {
        runner(in, len, len, STEP_ALL, tiny[t], &got);
        COMPARE("tiny output");
        runner(in, len, 0, 1, tiny[t], &got);
        COMPARE("tiny output, byte at a time");
    }
#undef COMPARE
    return failures;
}

/* DATA table. */

struct data_case {
    const char *in;
    size_t      in_len;
    const char *want;
    size_t      want_len;
    bool        want_done;
    size_t      want_in_used; /* SIZE_MAX: all of it */
    uint64_t    want_bare_lf;
    uint64_t    want_bare_cr;
};

#define ALL SIZE_MAX

static const struct data_case data_cases[] = {
    /* Plain messages and the end marker. */
    { L(""), L(""), false, ALL, 0, 0 },
    { L(".\r\n"), L(""), true, 3, 0, 0 },
    { L(".\r\nMAIL FROM:<>\r\n"), L(""), true, 3, 0, 0 },
    { L("\r\n.\r\n"), L("\r\n"), true, 5, 0, 0 },
    { L("hello\r\n.\r\n"), L("hello\r\n"), true, ALL, 0, 0 },
    { L("hello\r\n.\r\nQUIT\r\n"), L("hello\r\n"), true, 10, 0, 0 },
    { L("hello\r\n.\r\n.\r\n"), L("hello\r\n"), true, 10, 0, 0 },
    { L("a\r\nb\r\n\r\nc\r\n.\r\n"), L("a\r\nb\r\n\r\nc\r\n"), true, ALL, 0, 0 },
    { L("\r\n\r\n.\r\n"), L("\r\n\r\n"), true, ALL, 0, 0 },
    { L("no end"), L("no end"), false, ALL, 0, 0 },
    { L("a\r\n"), L("a\r\n"), false, ALL, 0, 0 },
    { L("\0\xff\x80 binary\r\n.\r\n"), L("\0\xff\x80 binary\r\n"), true, ALL, 0, 0 },

    /* Dot-unstuffing, at the start of DATA and of any line. */
    { L("..\r\n.\r\n"), L(".\r\n"), true, ALL, 0, 0 },
    { L("..\r\n"), L(".\r\n"), false, ALL, 0, 0 },
    { L("a\r\n..\r\n.\r\n"), L("a\r\n.\r\n"), true, ALL, 0, 0 },
    { L("...\r\n.\r\n"), L("..\r\n"), true, ALL, 0, 0 },
    { L("..a\r\n.\r\n"), L(".a\r\n"), true, ALL, 0, 0 },
    { L(".a\r\n.\r\n"), L("a\r\n"), true, ALL, 0, 0 },
    { L("a\r\n. \r\n.\r\n"), L("a\r\n \r\n"), true, ALL, 0, 0 },
    { L("a.\r\n.b\r\n.\r\n"), L("a.\r\nb\r\n"), true, ALL, 0, 0 },
    { L("a\n..\r\n.\r\n"), L("a\r\n.\r\n"), true, ALL, 1, 0 },
    { L("a\n.b\n"), L("a\r\nb\r\n"), false, ALL, 2, 0 },

    /* Smuggling: a "." line next to a bare LF is content, kept as ".". */
    { L("\n.\n"), L("\r\n.\r\n"), false, ALL, 2, 0 },
    { L("\r\n.\n"), L("\r\n.\r\n"), false, ALL, 1, 0 },
    { L("\n.\r\n"), L("\r\n.\r\n"), false, ALL, 1, 0 },
    { L("\r.\r\n"), L("\r.\r\n"), false, ALL, 0, 1 },
    { L("a\n.\n"), L("a\r\n.\r\n"), false, ALL, 2, 0 },
    { L("a\r\n.\n"), L("a\r\n.\r\n"), false, ALL, 1, 0 },
    { L("a\n.\r\n"), L("a\r\n.\r\n"), false, ALL, 1, 0 },
    { L("a\r.\r\n"), L("a\r.\r\n"), false, ALL, 0, 1 },
    { L("a\r\n.\r"), L("a\r\n"), false, ALL, 0, 0 },
    { L("a\r\n."), L("a\r\n"), false, ALL, 0, 0 },
    { L(".\n"), L(".\r\n"), false, ALL, 1, 0 },
    { L(".\n.\r\n"), L(".\r\n.\r\n"), false, ALL, 1, 0 },
    { L(".\r.\r\n"), L("\r.\r\n"), false, ALL, 0, 1 },
    { L("a\n.\r\n.\r\n"), L("a\r\n.\r\n"), true, ALL, 1, 0 },
    { L("a\n.\r\nb\r\n.\r\nQUIT\r\n"), L("a\r\n.\r\nb\r\n"), true, 11, 1, 0 },
    { L("a\n..\n.\r\n.\r\n"), L("a\r\n.\r\n.\r\n"), true, ALL, 2, 0 },
    { L("a\r\n.\n.\r\n"), L("a\r\n.\r\n.\r\n"), false, ALL, 1, 0 },
    { L("a\r\n.\n\r\n.\r\n"), L("a\r\n.\r\n\r\n"), true, ALL, 1, 0 },
    { L("a\r\n.\r\r\n.\r\n"), L("a\r\n\r\r\n"), true, ALL, 0, 1 },
    { L("a\r\n.\rb\r\n.\r\n"), L("a\r\n\rb\r\n"), true, ALL, 0, 1 },
    { L("a\r\n.\r.\r\n.\r\n"), L("a\r\n\r.\r\n"), true, ALL, 0, 1 },
    { L("a\r\r\n.\r\n"), L("a\r\r\n"), true, ALL, 0, 1 },
    { L("a\r\n\r.\r\n"), L("a\r\n\r.\r\n"), false, ALL, 0, 1 },
    { L("a\r\n .\r\n"), L("a\r\n .\r\n"), false, ALL, 0, 0 },
    { L("a\r\n.\r\n"), L("a\r\n"), true, ALL, 0, 0 },

    /* Bare LF normalised and counted, bare CR kept and counted. */
    { L("\n"), L("\r\n"), false, ALL, 1, 0 },
    { L("a\nb\n"), L("a\r\nb\r\n"), false, ALL, 2, 0 },
    { L("a\n\n\n.\r\n"), L("a\r\n\r\n\r\n.\r\n"), false, ALL, 3, 0 },
    { L("\r"), L(""), false, ALL, 0, 0 },
    { L("\r\r"), L("\r"), false, ALL, 0, 1 },
    { L("a\rb\r\n.\r\n"), L("a\rb\r\n"), true, ALL, 0, 1 },
    { L("a\r\r\r\n.\r\n"), L("a\r\r\r\n"), true, ALL, 0, 2 },
    { L("\r\r\n\n\r\n.\r\n"), L("\r\r\n\r\n\r\n"), true, ALL, 1, 1 },
    { L("."), L(""), false, ALL, 0, 0 },
    { L(".\r"), L(""), false, ALL, 0, 0 },
};

static struct run_result
data_case_want(const struct data_case *tc)
{
    struct run_result want;
    memset(&want, 0, sizeof(want));
    want.out = (uint8_t *)(uintptr_t)tc->want;
    want.out_len = tc->want_len;
    want.in_used = tc->want_in_used == ALL ? tc->in_len : tc->want_in_used;
    want.is_done = tc->want_done;
    want.bare_lf_count = tc->want_bare_lf;
    want.bare_cr_count = tc->want_bare_cr;
    want.out_total = tc->want_len;
    return want;
}

static void
test_data_table(void)
{
    for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++) {
        const struct data_case *tc = &data_cases[i];
        struct run_result want = data_case_want(tc);
        const uint8_t *in = (const uint8_t *)tc->in;
        unsigned failures = run_all_ways(run_data, in, tc->in_len, &want, true);
        if (failures > 0) {
            fprintf(stderr, "data case %zu: %u runs differ\n", i, failures);
        }
        CHECK(failures == 0);

        /* The table agrees with the reference decoder. */
        struct run_result ref;
        reference_data(in, tc->in_len, &ref);
        if (!results_equal(&ref, &want)) {
            report_mismatch("reference", in, tc->in_len, &ref, &want);
        }
        CHECK(results_equal(&ref, &want));
        free(ref.out);
    }
}

/* Calls with no input, and calls after the end, do nothing. */
static void
test_data_edges(void)
{
    struct smtp_data_decoder decoder;
    uint8_t out[8];
    size_t used = 99;
    size_t out_len = 99;

    smtp_data_decoder_init(&decoder);
    CHECK(smtp_data_decode(&decoder, NULL, 0, &used, out, sizeof(out), &out_len) ==
          SMTP_BODY_NEED_MORE);
    CHECK(used == 0);
    CHECK(out_len == 0);

    const uint8_t end[] = ".\r\nRSET\r\n";
    CHECK(smtp_data_decode(&decoder, end, sizeof(end) - 1, &used, out, sizeof(out), &out_len) ==
          SMTP_BODY_DONE);
    CHECK(used == 3);
    CHECK(out_len == 0);
    CHECK(smtp_data_decode(&decoder, end + 3, sizeof(end) - 4, &used, out, sizeof(out),
                           &out_len) == SMTP_BODY_DONE);
    CHECK(used == 0);
    CHECK(out_len == 0);

    /* Output room 2: each call stops once fewer than 2 bytes are left,
     * even before bytes that would write nothing, so the end marker is
     * found by a later call, after the caller drained the output. */
    smtp_data_decoder_init(&decoder);
    const uint8_t msg[] = "ab\r\n.\r\n";
    CHECK(smtp_data_decode(&decoder, msg, sizeof(msg) - 1, &used, out, 2, &out_len) ==
          SMTP_BODY_NEED_MORE);
    CHECK(used == 2);
    CHECK_BYTES(out, out_len, "ab", 2);
    CHECK(smtp_data_decode(&decoder, msg + 2, sizeof(msg) - 3, &used, out, 2, &out_len) ==
          SMTP_BODY_NEED_MORE);
    CHECK(used == 2);
    CHECK_BYTES(out, out_len, "\r\n", 2);
    CHECK(smtp_data_decode(&decoder, msg + 4, sizeof(msg) - 5, &used, out, 2, &out_len) ==
          SMTP_BODY_DONE);
    CHECK(used == 3);
    CHECK(out_len == 0);
    CHECK(decoder.out_total == 4);

    /* A decoder is reusable after init. */
    smtp_data_decoder_init(&decoder);
    CHECK(decoder.out_total == 0);
    CHECK(decoder.bare_lf_count == 0);
    CHECK(smtp_data_decode(&decoder, (const uint8_t *)".\r\n", 3, &used, out, sizeof(out),
                           &out_len) == SMTP_BODY_DONE);
}

/* A 1 MiB line costs nothing but the copy, in any chunking. */
static void
test_data_long_line(void)
{
    const size_t line_len = 1024 * 1024;
    size_t len = line_len + 6;
    uint8_t *in = xmalloc(len);
    memset(in, 'x', line_len);
    in[0] = '.'; /* unstuffed */
    in[line_len / 2] = '\r'; /* one bare CR in the middle */
    memcpy(in + line_len, "\r\n.\r\nZ", 6);

    struct run_result want;
    memset(&want, 0, sizeof(want));
    want.out = xmalloc(line_len + 1);
    memcpy(want.out, in + 1, line_len - 1);
    memcpy(want.out + line_len - 1, "\r\n", 2);
    want.out_len = line_len + 1;
    want.in_used = len - 1;
    want.is_done = true;
    want.bare_cr_count = 1;
    want.out_total = want.out_len;

    unsigned failures = run_all_ways(run_data, in, len, &want, false);
    static const size_t cuts[] = { 1, 2, 4096, 1024 * 1024 / 2, 1024 * 1024 / 2 + 1,
                                   1024 * 1024, 1024 * 1024 + 1, 1024 * 1024 + 2,
                                   1024 * 1024 + 3, 1024 * 1024 + 4 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct run_result got;
        run_data(in, len, cuts[i], STEP_ALL, 65536, &got);
        if (!results_equal(&got, &want)) {
            failures++;
        }
        free(got.out);
    }
    CHECK(failures == 0);

    struct run_result ref;
    reference_data(in, len, &ref);
    CHECK(results_equal(&ref, &want));
    free(ref.out);
    free(want.out);
    free(in);
}

/* Every string up to 8 bytes over the bytes that matter, against the
 * reference, whole, byte at a time and with 2 bytes of room. */
static void
test_data_exhaustive(void)
{
    static const uint8_t alphabet[] = { '.', '\r', '\n', 'a' };
    uint8_t in[8];
    unsigned long cases = 0;
    unsigned long failures = 0;

    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t total = 1;
        for (size_t k = 0; k < len; k++) {
            total *= sizeof(alphabet);
        }
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t k = 0; k < len; k++) {
                in[k] = alphabet[v % sizeof(alphabet)];
                v /= sizeof(alphabet);
            }
            struct run_result ref;
            reference_data(in, len, &ref);
            static const struct {
                size_t first_cut;
                size_t step;
                size_t out_bytes;
            } ways[] = { { SIZE_MAX, STEP_ALL, 64 }, { 0, 1, 64 }, { SIZE_MAX, STEP_ALL, 2 },
                         { 0, 1, 2 } };
            for (size_t w = 0; w < sizeof(ways) / sizeof(ways[0]); w++) {
                struct run_result got;
                run_data(in, len, ways[w].first_cut, ways[w].step, ways[w].out_bytes, &got);
                if (!results_equal(&got, &ref)) {
                    if (failures < 10) {
                        report_mismatch("exhaustive", in, len, &got, &ref);
                    }
                    failures++;
                }
                free(got.out);
            }
            free(ref.out);
            cases++;
        }
    }
    CHECK(cases == 87381);
    CHECK(failures == 0);
}

/* Longer random inputs, random chunking and output room, vs reference. */
static void
test_data_random(void)
{
    static const uint8_t alphabet[] = { '.', '\r', '\n', 'a', 'b', '.', '\r', '\n' };
    uint64_t seed = 0x9e3779b97f4a7c15u;
    unsigned long failures = 0;
    uint8_t in[96];

    for (int iter = 0; iter < 20000; iter++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t len = (size_t)(seed >> 33) % sizeof(in);
        for (size_t k = 0; k < len; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            in[k] = alphabet[(seed >> 40) % sizeof(alphabet)];
        }
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t first_cut = (size_t)(seed >> 33) % (len + 1);
        size_t step = 1 + (size_t)(seed >> 20) % 9;
        size_t out_bytes = 2 + (size_t)(seed >> 50) % 6;

        struct run_result ref;
        reference_data(in, len, &ref);
        struct run_result got;
        run_data(in, len, first_cut, step, out_bytes, &got);
        if (!results_equal(&got, &ref)) {
            if (failures < 10) {
                report_mismatch("random", in, len, &got, &ref);
            }
            failures++;
        }
        free(got.out);
        free(ref.out);
    }
    CHECK(failures == 0);
}

/* BDAT table. */

struct bdat_case {
    const char *in;
    size_t      in_len;
    const char *want; /* after smtp_bdat_finish() */
    size_t      want_len;
    uint64_t    want_bare_lf;
    uint64_t    want_bare_cr;
};

static const struct bdat_case bdat_cases[] = {
    { L(""), L(""), 0, 0 },
    { L("abc"), L("abc"), 0, 0 },
    { L("a\r\nb\r\n"), L("a\r\nb\r\n"), 0, 0 },
    { L("a\nb\n"), L("a\r\nb\r\n"), 2, 0 },
    { L("\n"), L("\r\n"), 1, 0 },
    { L("\n\n"), L("\r\n\r\n"), 2, 0 },
    { L("a\rb"), L("a\rb"), 0, 1 },
    { L("a\r"), L("a\r"), 0, 1 },
    { L("\r"), L("\r"), 0, 1 },
    { L("\r\r"), L("\r\r"), 0, 2 },
    { L("\r\n"), L("\r\n"), 0, 0 },
    { L("\r\r\n"), L("\r\r\n"), 0, 1 },
    { L("\r\n\n\r"), L("\r\n\r\n\r"), 1, 1 },
    /* No dot handling in BDAT: the size says where the chunk ends. */
    { L(".\r\n"), L(".\r\n"), 0, 0 },
    { L("a\r\n.\r\nb"), L("a\r\n.\r\nb"), 0, 0 },
    { L("..\n.\n"), L("..\r\n.\r\n"), 2, 0 },
    { L("\0\xff\x80"), L("\0\xff\x80"), 0, 0 },
};

static void
test_bdat_table(void)
{
    for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        const struct bdat_case *tc = &bdat_cases[i];
        struct run_result want;
        memset(&want, 0, sizeof(want));
        want.out = (uint8_t *)(uintptr_t)tc->want;
        want.out_len = tc->want_len;
        want.in_used = tc->in_len;
        want.bare_lf_count = tc->want_bare_lf;
        want.bare_cr_count = tc->want_bare_cr;
        want.out_total = tc->want_len;
        unsigned failures = run_all_ways(run_bdat, (const uint8_t *)tc->in, tc->in_len, &want,
                                         true);
        if (failures > 0) {
            fprintf(stderr, "bdat case %zu: %u runs differ\n", i, failures);
        }
        CHECK(failures == 0);
    }
}

/* A CR at the end of one chunk pairs with an LF at the start of the next,
 * and is held (not written) in between. */
static void
test_bdat_held_cr(void)
{
    struct smtp_bdat_decoder decoder;
    uint8_t out[8];
    size_t used;
    size_t out_len;

    smtp_bdat_decoder_init(&decoder);
    smtp_bdat_decode(&decoder, (const uint8_t *)"a\r", 2, &used, out, sizeof(out), &out_len);
    CHECK(used == 2);
    CHECK_BYTES(out, out_len, "a", 1);
    smtp_bdat_decode(&decoder, (const uint8_t *)"\nb", 2, &used, out, sizeof(out), &out_len);
    CHECK(used == 2);
    CHECK_BYTES(out, out_len, "\r\nb", 3);
    CHECK(decoder.bare_cr_count == 0);
    CHECK(decoder.bare_lf_count == 0);
    CHECK(smtp_bdat_finish(&decoder, out, 1) == 0);
    CHECK(decoder.out_total == 4);

    /* Held CR then a non-LF: a bare CR. */
    smtp_bdat_decoder_init(&decoder);
    smtp_bdat_decode(&decoder, (const uint8_t *)"\r", 1, &used, out, sizeof(out), &out_len);
    CHECK(used == 1);
    CHECK(out_len == 0);
    smtp_bdat_decode(&decoder, (const uint8_t *)"x", 1, &used, out, sizeof(out), &out_len);
    CHECK_BYTES(out, out_len, "\rx", 2);
    CHECK(decoder.bare_cr_count == 1);

    /* Empty input keeps the held CR. */
    smtp_bdat_decoder_init(&decoder);
    smtp_bdat_decode(&decoder, (const uint8_t *)"\r", 1, &used, out, sizeof(out), &out_len);
    smtp_bdat_decode(&decoder, NULL, 0, &used, out, sizeof(out), &out_len);
    CHECK(used == 0);
    CHECK(out_len == 0);
    CHECK(smtp_bdat_finish(&decoder, out, 1) == 1);
    CHECK(out[0] == '\r');
    CHECK(decoder.bare_cr_count == 1);
    CHECK(decoder.out_total == 1);
}

static void
test_bdat_long(void)
{
    const size_t len = 1024 * 1024;
    uint8_t *in = xmalloc(len);
    memset(in, 'y', len);
    in[len - 1] = '\n';
    struct run_result want;
    memset(&want, 0, sizeof(want));
    want.out = xmalloc(len + 1);
    memcpy(want.out, in, len - 1);
    memcpy(want.out + len - 1, "\r\n", 2);
    want.out_len = len + 1;
    want.in_used = len;
    want.bare_lf_count = 1;
    want.out_total = want.out_len;
    CHECK(run_all_ways(run_bdat, in, len, &want, false) == 0);
    free(want.out);
    free(in);
}

int
main(void)
{
    test_data_table();
    test_data_edges();
    test_data_long_line();
    test_data_exhaustive();
    test_data_random();
    test_bdat_table();
    test_bdat_held_cr();
    test_bdat_long();
    UNIT_DONE();
}
