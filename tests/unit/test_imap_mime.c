/*
 * tests/unit/test_imap_mime.c - MIME structure, BODY and BODYSTRUCTURE.
 *
 * Every message in tests/unit/fixtures/mime/ is parsed and its ENVELOPE,
 * BODY and BODYSTRUCTURE compared byte for byte with the .envelope, .body
 * and .bodystructure files next to it, which Dovecot 2.3.19.1 printed
 * (doveadm fetch imap.*), except where fixtures/mime/README says we
 * differ on purpose. Each output is also written into every smaller buffer
 * to check that overflow is reported and nothing is written past the end.
 * Then part offsets, sizes and the limits (depth, part count, header
 * bound) are checked directly, and header values holding NUL (sent as
 * 0x80 in a literal, never as NUL).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_bodystructure.h"
#include "proto/imap/imap_envelope.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_quote.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

#define OUT_BYTES (256 * 1024)

static const char *const fixture_names[] = {
    "plain",
    "alternative_mixed",
    "forwarded",
    "encoded_words",
    "groups",
    "missing_boundary",
    "no_boundary_param",
    "unclosed",
    "garbage_ctype",
    "garbage_ctype2",
    "deep",
    "lf_only",
    "cr_only",
    "eightbit_headers",
    "digest",
    "empty",
    "header_only",
    "whitespace_boundary",
    "weird_addresses",
    "rfc822_default_charset",
    "quoting",
    "hdr_boundary",
    "dup_ctype",
    "upper",
    "garbage_after_boundary",
    "same_boundary",
    "cte_comment",
    "empty_subject_fold",
    "multipart_text_lines",
    "param_weird",
    "disposition",
    "no_blank",
    "boundary_at_start",
    "rfc2231_a",
    "rfc2231_b",
    "rfc2231_c",
    "rfc2231_d",
    "duplicates",
};

static struct imap_mime_part parts[IMAP_MIME_PARTS_MAX];
static char msg_buf[65536];
static char want_buf[65536];
static char out_buf[OUT_BYTES];
static char small_buf[OUT_BYTES];

enum what { WHAT_ENVELOPE, WHAT_BODY, WHAT_BODYSTRUCTURE };

static void
generate(struct imap_out *out, const char *msg, size_t part_count, enum what what)
{
    if (what == WHAT_ENVELOPE) {
        imap_envelope_write(out, msg + parts[0].header_offset, parts[0].header_size, 0);
    } else {
        imap_bodystructure_write(out, msg, parts, part_count, 0, what == WHAT_BODYSTRUCTURE, 0);
    }
}

/* Every smaller room must report overflow, write only inside the room and
 * leave a prefix of the full output. */
static void
check_overflow(const char *msg, size_t part_count, enum what what, const char *full,
               size_t full_len)
{
    size_t step = full_len > 2000 ? 37 : 1;
    for (size_t cap = 0; cap < full_len; cap += step) {
        memset(small_buf, 0x5a, cap + 16);
        struct imap_out out;
        imap_out_init(&out, small_buf, cap);
        generate(&out, msg, part_count, what);
        CHECK(out.is_overflow);
        CHECK(out.len <= cap);
        CHECK(memcmp(small_buf, full, out.len) == 0);
        bool is_clean = true;
        for (size_t i = cap; i < cap + 16; i++) {
            is_clean = is_clean && small_buf[i] == 0x5a;
        }
        CHECK(is_clean);
    }
    struct imap_out out;
    imap_out_init(&out, small_buf, full_len);
    generate(&out, msg, part_count, what);
    CHECK(!out.is_overflow);
    CHECK_BYTES(small_buf, out.len, full, full_len);
}

static void
test_fixtures(void)
{
    static const char *const suffixes[] = { "envelope", "body", "bodystructure" };
    for (size_t i = 0; i < sizeof(fixture_names) / sizeof(fixture_names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "mime/%s.eml", fixture_names[i]);
        size_t len = FIXTURE_READ(path, msg_buf);
        /* An exact-size heap copy, so ASan sees reads past the end. */
        char *msg = malloc(len > 0 ? len : 1);
        memcpy(msg, msg_buf, len);
        struct imap_mime_result result;
        CHECK(imap_mime_parse(msg, len, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
        CHECK(result.part_count >= 1);
        for (size_t w = 0; w < 3; w++) {
            snprintf(path, sizeof(path), "mime/%s.%s", fixture_names[i], suffixes[w]);
            size_t want_len = FIXTURE_READ(path, want_buf);
            struct imap_out out;
            imap_out_init(&out, out_buf, sizeof(out_buf));
            generate(&out, msg, result.part_count, (enum what)w);
            CHECK(!out.is_overflow);
            if (out.len != want_len || memcmp(out_buf, want_buf, want_len) != 0) {
                fprintf(stderr, "fixture %s.%s:\n", fixture_names[i], suffixes[w]);
            }
            CHECK_BYTES(out_buf, out.len, want_buf, want_len);
            check_overflow(msg, result.part_count, (enum what)w, out_buf, out.len);
        }
        free(msg);
    }
}

static size_t
parse(const char *msg, size_t cap, struct imap_mime_result *result)
{
    CHECK(imap_mime_parse(msg, strlen(msg), parts, cap, result) == 0);
    return result->part_count;
}

static void
check_structure(const char *msg, size_t cap, const char *want)
{
    struct imap_mime_result result;
    size_t n = parse(msg, cap, &result);
    struct imap_out out;
    imap_out_init(&out, out_buf, sizeof(out_buf));
    imap_bodystructure_write(&out, msg, parts, n, 0, false, 0);
    CHECK(!out.is_overflow);
    CHECK_BYTES(out_buf, out.len, want, strlen(want));
}

static void
test_offsets(void)
{
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n"
                      "\r\n"
                      "pre\r\n"
                      "--b\r\n"
                      "\r\n"
                      "one\r\n"
                      "--b\r\n"
                      "X: y\r\n"
                      "\r\n"
                      "two\r\n"
                      "\r\n"
                      "--b--\r\n"
                      "epilogue\r\n";
    struct imap_mime_result result;
    CHECK(parse(msg, IMAP_MIME_PARTS_MAX, &result) == 3);
    CHECK(!result.is_truncated);
    CHECK(parts[0].header_offset == 0);
    CHECK(parts[0].header_size == 45);
    CHECK(parts[0].body_offset == 45);
    CHECK(parts[0].body_size == strlen(msg) - 45);
    CHECK(parts[0].first_child == 1);
    CHECK(parts[1].parent == 0);
    CHECK(parts[1].next_sibling == 2);
    CHECK(parts[2].next_sibling == IMAP_MIME_NONE);
    CHECK(parts[1].header_offset == 55);
    CHECK(parts[1].header_size == 2);
    CHECK(parts[1].body_size == 3);
    CHECK(parts[1].body_lines == 0);
    CHECK(memcmp(msg + parts[1].body_offset, "one", 3) == 0);
    CHECK(parts[2].header_size == 8);
    CHECK(parts[2].body_size == 5);
    CHECK(parts[2].body_lines == 1);
    CHECK(memcmp(msg + parts[2].body_offset, "two\r\n", 5) == 0);
    CHECK(parts[2].depth == 1);
    CHECK((parts[0].flags & IMAP_MIME_IS_MULTIPART) != 0);
    CHECK((parts[1].flags & IMAP_MIME_IS_TEXT) != 0);
    CHECK(parts[0].boundary.len == 1);
}

static void
test_boundaries(void)
{
    /* A boundary inside a nested part that is a prefix of the inner one:
     * the longest match wins (Dovecot's rule). */
    check_structure("Content-Type: multipart/mixed; boundary=a\r\n\r\n"
                    "--a\r\nContent-Type: multipart/mixed; boundary=ab\r\n\r\n"
                    "--ab\r\n\r\nx\r\n--ab--\r\n--a--\r\n",
                    IMAP_MIME_PARTS_MAX,
                    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
                    " \"mixed\") \"mixed\")");
    /* An outer boundary ends an inner multipart that never closed. */
    check_structure("Content-Type: multipart/mixed; boundary=o\r\n\r\n"
                    "--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n"
                    "--i\r\n\r\nx\r\n--o\r\n\r\nyy\r\n--o--\r\n",
                    IMAP_MIME_PARTS_MAX,
                    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
                    " \"alternative\")(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL"
                    " \"7bit\" 2 0) \"mixed\")");
    /* A part whose header runs into the next boundary has an empty body. */
    check_structure("Content-Type: multipart/mixed; boundary=q\r\n\r\n"
                    "--q\r\nContent-Type: text/html\r\n--q\r\n\r\nz\r\n--q--\r\n",
                    IMAP_MIME_PARTS_MAX,
                    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)"
                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
                    " \"mixed\")");
    /* Comments and folding in Content-Type. */
    check_structure("Content-Type: (c) multipart (x) /\r\n (y) mixed; (z)\r\n"
                    "\tboundary=\"k\" (w)\r\n\r\n--k\r\n\r\nv\r\n--k--\r\n",
                    IMAP_MIME_PARTS_MAX,
                    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 1 0)"
                    " \"mixed\")");
}

static void
test_limits(void)
{
    /* Parts: with room for 2 records, the third part is not made. */
    const char *msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                      "--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b--\r\n";
    struct imap_mime_result result;
    CHECK(parse(msg, 3, &result) == 3);
    CHECK(!result.is_truncated);
    CHECK(parse(msg, 2, &result) == 2);
    CHECK(result.is_truncated);
    CHECK(parse(msg, 1, &result) == 1);
    CHECK(result.is_truncated);
    CHECK(parts[0].body_size == strlen(msg) - 45);

    /* Depth: build nesting at max - 1, max and max + 1 levels. */
    static char deep[IMAP_MIME_DEPTH_MAX * 80 + 200];
    for (int levels = IMAP_MIME_DEPTH_MAX - 1; levels <= IMAP_MIME_DEPTH_MAX + 1; levels++) {
        size_t n = 0;
        for (int i = 0; i < levels - 1; i++) {
            n += (size_t)snprintf(deep + n, sizeof(deep) - n,
                                  "Content-Type: multipart/mixed; boundary=d%d.\r\n\r\n--d%d.\r\n",
                                  i, i);
        }
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\r\nleaf\r\n");
        CHECK(imap_mime_parse(deep, n, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
        CHECK(result.part_count <= IMAP_MIME_DEPTH_MAX);
        CHECK(result.is_truncated == (levels > IMAP_MIME_DEPTH_MAX));
        for (size_t i = 0; i < result.part_count; i++) {
            CHECK(parts[i].depth < IMAP_MIME_DEPTH_MAX);
        }
        struct imap_out out;
        imap_out_init(&out, out_buf, sizeof(out_buf));
        imap_bodystructure_write(&out, deep, parts, result.part_count, 0, true, 0);
        CHECK(!out.is_overflow);
    }

    /* message/rfc822 nesting stops at the bound too. */
    {
        size_t n = 0;
        for (int i = 0; i < IMAP_MIME_DEPTH_MAX + 5; i++) {
            n += (size_t)snprintf(deep + n, sizeof(deep) - n,
                                  "Content-Type: message/rfc822\r\n\r\n");
        }
        CHECK(imap_mime_parse(deep, n, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
        CHECK(result.part_count == IMAP_MIME_DEPTH_MAX);
        CHECK(result.is_truncated);
        struct imap_out out;
        imap_out_init(&out, out_buf, sizeof(out_buf));
        imap_bodystructure_write(&out, deep, parts, result.part_count, 0, true, 0);
        CHECK(!out.is_overflow);
    }

    /* Header bound: a header block longer than the bound is cut. */
    size_t big = IMAP_MIME_HEADER_BYTES_MAX + 100;
    char *hdr = malloc(big);
    for (size_t i = 0; i < big; i += 10) {
        memcpy(hdr + i, "X: 123456\n", 10 < big - i ? 10 : big - i);
    }
    CHECK(imap_mime_parse(hdr, big, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
    CHECK(result.is_header_truncated);
    CHECK(parts[0].header_size <= IMAP_MIME_HEADER_BYTES_MAX + 10);
    CHECK(parts[0].header_size + parts[0].body_size == big);
    CHECK(imap_mime_parse(hdr, IMAP_MIME_HEADER_BYTES_MAX - 10, parts, IMAP_MIME_PARTS_MAX,
                          &result) == 0);
    CHECK(!result.is_header_truncated);
    free(hdr);
}

static void
check_nul_structure(const char *msg, size_t len, unsigned flags, const char *want,
                    size_t want_len)
{
    /* An exact-size heap copy, so ASan sees reads past the end. */
    char *copy = malloc(len);
    memcpy(copy, msg, len);
    struct imap_mime_result result;
    CHECK(imap_mime_parse(copy, len, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
    struct imap_out out;
    imap_out_init(&out, out_buf, sizeof(out_buf));
    imap_bodystructure_write(&out, copy, parts, result.part_count, 0, true, flags);
    CHECK(!out.is_overflow);
    CHECK_BYTES(out_buf, out.len, want, want_len);
    free(copy);
}

#define S(s) (s), (sizeof(s) - 1)

/* NUL in header values (no IMAP string may hold one): parameter values,
 * RFC 2231 continuations, Content-ID, -Description, -MD5, -Location and
 * the disposition's parameters come out with 0x80 in a literal, with and
 * without UTF8=ACCEPT; then a NUL at every position of a multipart
 * message never reaches the BODY / BODYSTRUCTURE output. */
static void
test_nul(void)
{
    check_nul_structure(S("Content-Type: text/plain; charset=\"\0utf-8\"; x=\"a\0b\"; y=\"z\0\"\r\n"
                          "\r\nbody\r\n"),
                        0,
                        S("(\"text\" \"plain\" (\"charset\" {6}\r\n\x80utf-8 \"x\" {3}\r\na\x80"
                          "b \"y\" {2}\r\nz\x80) NIL NIL \"7bit\" 6 1 NIL NIL NIL NIL)"));
    check_nul_structure(S("Content-Type: text/plain; charset=\"\0\"\r\n\r\n"), IMAP_QUOTE_UTF8,
                        S("(\"text\" \"plain\" (\"charset\" {1}\r\n\x80) NIL NIL \"7bit\" 0 0"
                          " NIL NIL NIL NIL)"));
    /* RFC 2231 continuations are joined through the producer path. */
    check_nul_structure(S("Content-Type: application/x; name*0=\"a\0\"; name*1=\"\0b\"\r\n\r\n"), 0,
                        S("(\"application\" \"x\" (\"name\" {4}\r\na\x80\x80" "b) NIL NIL"
                          " \"7bit\" 0 NIL NIL NIL NIL)"));
    check_nul_structure(S("Content-Type: application/x\r\n"
                          "Content-ID: <\0@x>\r\n"
                          "Content-Description: d\0\r\n"
                          "Content-MD5: \0\r\n"
                          "Content-Disposition: attachment; filename=\"f\0.txt\"\r\n"
                          "Content-Location: http://x/\0\r\n\r\n"),
                        IMAP_QUOTE_UTF8,
                        S("(\"application\" \"x\" NIL {5}\r\n<\x80@x> {2}\r\nd\x80 \"7bit\" 0"
                          " {1}\r\n\x80 (\"attachment\" (\"filename\" {6}\r\nf\x80.txt)) NIL"
                          " {10}\r\nhttp://x/\x80)"));

    static const char full[] =
        "From: \"A\" <a@b>\r\nSubject: s\r\n"
        "Content-Type: multipart/mixed; boundary=\"b\"; x=\"y\"\r\n\r\n"
        "--b\r\n"
        "Content-Type: text/plain; charset=\"utf-8\"; name*0=\"n\"; name*1*=%41\r\n"
        "Content-ID: <i@d>\r\nContent-Description: desc\r\n"
        "Content-Disposition: inline; filename=\"f.txt\"\r\n"
        "Content-Language: en, de\r\nContent-Location: loc\r\n\r\n"
        "text\r\n"
        "--b\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
        "From: c@d\r\nTo: \"E\" <e@f>\r\nSubject: inner\r\nMessage-ID: <m@i>\r\n"
        "Content-Type: text/html; charset=us-ascii\r\n\r\n"
        "<p>hi</p>\r\n"
        "--b--\r\n";
    char msg[sizeof(full)];
    unsigned long nul_out = 0;
    unsigned long overflow = 0;
    for (size_t at = 0; at + 1 < sizeof(full); at++) {
        memcpy(msg, full, sizeof(full));
        msg[at] = '\0';
        struct imap_mime_result result;
        CHECK(imap_mime_parse(msg, sizeof(full) - 1, parts, IMAP_MIME_PARTS_MAX, &result) == 0);
        for (unsigned flags = 0; flags <= IMAP_QUOTE_UTF8; flags += IMAP_QUOTE_UTF8) {
            for (int is_extended = 0; is_extended <= 1; is_extended++) {
                struct imap_out out;
                imap_out_init(&out, out_buf, sizeof(out_buf));
                imap_bodystructure_write(&out, msg, parts, result.part_count, 0,
                                         is_extended != 0, flags);
                overflow += out.is_overflow;
                nul_out += memchr(out_buf, '\0', out.len) != NULL;
            }
        }
    }
    CHECK(overflow == 0);
    CHECK(nul_out == 0);
}

int
main(void)
{
    test_fixtures();
    test_offsets();
    test_boundaries();
    test_limits();
    test_nul();
    UNIT_DONE();
}
