/*
 * tests/unit/test_log_format.c - the stable log line shapes (core/log.h):
 * plain with and without a timestamp, journal with syslog priorities, the
 * level words, escaping of control bytes, the cut marker and the bounds of
 * the output buffer; and the $JOURNAL_STREAM "DEV:INO" matcher, with
 * malformed values. Pure functions fed strings; no file descriptor.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "tests/unit/unit.h"

static size_t
fmt(enum log_format format, const char *timestamp, enum log_level level, const char *text,
    bool is_cut, char *out, size_t out_bytes)
{
    return log_line_format(format, timestamp, 4242, level, text, strlen(text), is_cut, out,
                           out_bytes);
}

static void
check_line(enum log_format format, const char *timestamp, enum log_level level,
           const char *text, const char *want)
{
    char out[LOG_LINE_BYTES_MAX];
    size_t len = fmt(format, timestamp, level, text, false, out, sizeof(out));
    CHECK_BYTES(out, len, want, strlen(want));
}

static void
test_plain(void)
{
    const char *ts = "2026-12-05T06:41:26.123Z";
    check_line(LOG_FORMAT_PLAIN, ts, LOG_LEVEL_INFO, "4F3A2B9C: from=<a@b>, size=1234",
               "2026-12-05T06:41:26.123Z toasterd[4242]: 4F3A2B9C: from=<a@b>, size=1234\n");
    check_line(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_INFO, "started",
               "toasterd[4242]: started\n");
    check_line(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_ERROR, "disk full",
               "toasterd[4242]: error: disk full\n");
    check_line(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_WARNING, "slow",
               "toasterd[4242]: warning: slow\n");
    check_line(LOG_FORMAT_PLAIN, ts, LOG_LEVEL_DEBUG, "x",
               "2026-12-05T06:41:26.123Z toasterd[4242]: debug: x\n");
    check_line(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_INFO, "", "toasterd[4242]: \n");
}

static void
test_journal(void)
{
    /* No timestamp and no "toasterd[pid]: ": journald records both. */
    check_line(LOG_FORMAT_JOURNAL, "2026-12-05T06:41:26.123Z", LOG_LEVEL_ERROR, "disk full",
               "<3>error: disk full\n");
    check_line(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_WARNING, "slow", "<4>warning: slow\n");
    check_line(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "4F3A2B9C: to=<b@c>",
               "<6>4F3A2B9C: to=<b@c>\n");
    check_line(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_DEBUG, "x", "<7>debug: x\n");
}

static void
test_escape(void)
{
    /* A peer's CR LF cannot start a forged line; nor can "<0>". */
    check_line(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "a\r\n<0>b\x7f\x01",
               "<6>a\\x0d\\x0a<0>b\\x7f\\x01\n");
    check_line(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_INFO, "tab\there",
               "toasterd[4242]: tab\\x09here\n");
}

static void
test_cut(void)
{
    char out[LOG_LINE_BYTES_MAX];
    size_t len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "abc", true, out, sizeof(out));
    CHECK_BYTES(out, len, "<6>abc...\n", 10);

    /* Output bound: head "<6>" (3) + text + "...\n": out_bytes 12 leaves
     * 12 - 4 - 3 = 5 text bytes, then the marker. */
    len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "0123456789", false, out, 12);
    CHECK_BYTES(out, len, "<6>01234...\n", 12);
    /* One byte more of room, one more text byte. */
    len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "0123456789", false, out, 13);
    CHECK_BYTES(out, len, "<6>012345...\n", 13);
    /* Text that fits exactly is not marked: 3 + 5 + 1 = 9 bytes used of 13. */
    len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "01234", false, out, 13);
    CHECK_BYTES(out, len, "<6>01234\n", 9);
    /* An escape is never split: 4 bytes or none. */
    len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "ab\x01", false, out, 12);
    CHECK_BYTES(out, len, "<6>ab...\n", 9);
    /* No room for the head and a newline: nothing. */
    CHECK(fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "x", false, out, 4) == 0);
    CHECK(fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "x", false, out, 3) == 0);
    CHECK(fmt(LOG_FORMAT_PLAIN, NULL, LOG_LEVEL_INFO, "x", false, out, 16) == 0);
    /* 5 bytes: head and newline, no room for text or marker. */
    len = fmt(LOG_FORMAT_JOURNAL, NULL, LOG_LEVEL_INFO, "x", false, out, 5);
    CHECK_BYTES(out, len, "<6>\n", 4);

    /* A huge text stays within LOG_LINE_BYTES_MAX, whatever out_bytes says. */
    static char big[3 * LOG_LINE_BYTES_MAX];
    memset(big, 'a', sizeof(big) - 1);
    static char huge_out[2 * LOG_LINE_BYTES_MAX];
    len = log_line_format(LOG_FORMAT_PLAIN, NULL, 1, LOG_LEVEL_INFO, big, sizeof(big) - 1, false,
                          huge_out, sizeof(huge_out));
    CHECK(len == LOG_LINE_BYTES_MAX);
    CHECK(huge_out[len - 1] == '\n');
    CHECK(memcmp(huge_out + len - 4, "...", 3) == 0);
    /* Control bytes all the way: four bytes each, still bounded. */
    memset(big, 0x01, sizeof(big) - 1);
    len = log_line_format(LOG_FORMAT_JOURNAL, NULL, 1, LOG_LEVEL_INFO, big, sizeof(big) - 1,
                          false, huge_out, sizeof(huge_out));
    CHECK(len <= LOG_LINE_BYTES_MAX);
    CHECK(huge_out[len - 1] == '\n');
    CHECK(memcmp(huge_out + 3, "\\x01\\x01", 8) == 0);
}

static void
test_journal_stream(void)
{
    CHECK(log_journal_stream_matches("8:12345", 8, 12345));
    CHECK(log_journal_stream_matches("0:0", 0, 0));
    CHECK(log_journal_stream_matches("18446744073709551615:1", 18446744073709551615ULL, 1));
    CHECK(!log_journal_stream_matches("8:12345", 8, 12346));
    CHECK(!log_journal_stream_matches("8:12345", 9, 12345));
    CHECK(!log_journal_stream_matches(NULL, 8, 12345));
    CHECK(!log_journal_stream_matches("", 0, 0));
    CHECK(!log_journal_stream_matches(":", 0, 0));
    CHECK(!log_journal_stream_matches("8:", 8, 0));
    CHECK(!log_journal_stream_matches(":12345", 0, 12345));
    CHECK(!log_journal_stream_matches("8:12345 ", 8, 12345));
    CHECK(!log_journal_stream_matches(" 8:12345", 8, 12345));
    CHECK(!log_journal_stream_matches("8:12345:1", 8, 12345));
    CHECK(!log_journal_stream_matches("-8:12345", 8, 12345));
    CHECK(!log_journal_stream_matches("0x8:12345", 8, 12345));
    /* One past UINT64_MAX overflows: not a match for anything. */
    CHECK(!log_journal_stream_matches("18446744073709551616:1", 0, 1));
    CHECK(!log_journal_stream_matches("184467440737095516150:1", 0, 1));
}

int
main(void)
{
    test_plain();
    test_journal();
    test_escape();
    test_cut();
    test_journal_stream();
    UNIT_DONE();
}
