/*
 * tests/unit/test_imap_search.c - SEARCH compiled, matched and answered,
 * and the imap_text pieces it stands on (among them a text ending in a
 * truncated UTF-8 sequence: finder, contains and fold agree).
 *
 * Commands go through imap_reader and imap_parser exactly as in the
 * daemon, then imap_search_parse(); tables list valid and invalid argument
 * lists with the expected error, limits at max - 1 / max / max + 1
 * (nesting, keys, ranges, string length, arena). Matching runs on
 * hand-built messages: RFC 2047 headers (UTF-8 B, ISO-8859-1 Q, KOI8-R via
 * iconv), base64 and quoted-printable bodies, multipart/alternative with an
 * attachment, nested message/rfc822, dates around midnight in several
 * zones. Formatting covers SEARCH, ESEARCH, MODSEQ, empty results and a
 * 1,000,000-number answer. The cached body text (imap_search_body_text)
 * must answer BODY and TEXT exactly as reading the message does: every
 * MIME fixture and a set of hand-made messages (charsets, encodings split
 * across lines and chunks, invalid UTF-8, nested parts) against fixed
 * needles and needles cut from the text itself, including ones that
 * straddle two parts.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_reader.h"
#include "proto/imap/imap_search.h"
#include "proto/imap/imap_text.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

/* imap_text. */

struct header_case {
    const char *in;
    const char *want;
};

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static const struct header_case header_cases[] = {
    { "plain text", "plain text" },
    { "Hello\r\n world", "Hello world" },
    { "Hello\r\n\tworld", "Hello\tworld" },
    { "=?UTF-8?B?SsO2cmcgTcO8bGxlcg==?=", "Jörg Müller" },
    { "=?ISO-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème" },
    { "=?iso-8859-1?q?Caf=e9?= meeting", "Café meeting" },
    { "=?utf-8?q?a?= =?utf-8?q?b?=", "ab" },
    { "=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab" },
    { "x =?utf-8?q?a?= y", "x a y" },
    { "=?utf-8?q?a?= b =?utf-8?q?c?=", "a b c" },
    /* One character split across two words (C3 | A9). */
    { "=?UTF-8?B?ww==?= =?UTF-8?B?qQ==?=", "é" },
    { "=?UTF-8*en?Q?hi?=", "hi" },
    { "=?utf-8?q?a=3Db?=", "a=b" },
    { "=?utf-8?q?bad=ZZ?=", "bad=ZZ" },
    { "foo=?utf-8?q?bar?=", "foobar" },
    { "=?x-unknown-charset?Q?abc?=", "=?x-unknown-charset?Q?abc?=" },
    { "=?utf-8?x?abc?=", "=?utf-8?x?abc?=" },
    { "=?utf-8?q?no end", "=?utf-8?q?no end" },
    { "=?utf-8?q?sp ace?=", "=?utf-8?q?sp ace?=" },
    { "=??q?x?=", "=??q?x?=" },
    { "=?utf-8?b?!!!!?=", "=?utf-8?b?!!!!?=" },
    { "=?windows-1252?Q?=80_5?=", "€ 5" },
    { "=?ISO-8859-15?Q?=A4?=", "€" },
    { "=?KOI8-R?B?8NLJ18XUIM3J0g==?=", "Привет мир" },
    { "=?utf-8?q?x?= =?iso-8859-1?q?=E9?=", "xé" },
    /* glibc's other names for UTF-8 copy bytes unchecked; ours checks them. */
    { "=?utf-+8?q?b=F4=90=80=80?=", "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },
    { "=?ISO-IR-193?q?=C3=A9=FF?=", "é\xef\xbf\xbd" },
    { "Grüße", "Grüße" },
    { "a\xff" "b", "a\xef\xbf\xbd" "b" },
    { "a\xc3(", "a\xef\xbf\xbd(" },
    { "", "" },
};

static void
test_decode_header(void)
{
    char out[256];
    for (size_t i = 0; i < sizeof(header_cases) / sizeof(header_cases[0]); i++) {
        const struct header_case *c = &header_cases[i];
        size_t n = imap_text_decode_header(c->in, strlen(c->in), out, sizeof(out));
        CHECK_BYTES(out, n, c->want, strlen(c->want));
    }
    /* Cut on a character boundary: "abcdé" into 5 bytes gives "abcd". */
    size_t n = imap_text_decode_header("abcdé", strlen("abcdé"), out, 5);
    CHECK_BYTES(out, n, "abcd", 4);
    n = imap_text_decode_header("=?utf-8?q?abcd=C3=A9?=", 22, out, 5);
    CHECK_BYTES(out, n, "abcd", 4);
    n = imap_text_decode_header("abc", 3, out, 0);
    CHECK(n == 0);
    /* A long value stops at the buffer. */
    static char big[20000];
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (char)('a' + i % 26);
    }
    static char bigout[IMAP_TEXT_HEADER_BYTES_MAX];
    n = imap_text_decode_header(big, sizeof(big), bigout, sizeof(bigout));
    CHECK(n == sizeof(bigout));
    CHECK(memcmp(bigout, big, n) == 0);
}

static void
test_charsets(void)
{
    char out[64];
    long n = imap_text_to_utf8(SPAN_LITERAL("ISO-8859-1"), "caf\xe9", 4, out, sizeof(out));
    CHECK_BYTES(out, (size_t)n, "café", strlen("café"));
    n = imap_text_to_utf8(SPAN_LITERAL("latin1"), "\xff", 1, out, sizeof(out));
    CHECK_BYTES(out, (size_t)n, "ÿ", 2);
    n = imap_text_to_utf8(SPAN_LITERAL("us-ascii"), "abc", 3, out, sizeof(out));
    CHECK_BYTES(out, (size_t)n, "abc", 3);
    n = imap_text_to_utf8(SPAN_LITERAL("UTF-8"), "a\xc3(b", 4, out, sizeof(out));
    CHECK_BYTES(out, (size_t)n, "a\xef\xbf\xbd(b", 6);
    n = imap_text_to_utf8(SPAN_LITERAL("utf-8"), "\xed\xa0\x80", 3, out, sizeof(out));
    CHECK(n == 9); /* a surrogate: three replacement characters */
    n = imap_text_to_utf8(SPAN_LITERAL("x-no-such-charset"), "abc", 3, out, sizeof(out));
    CHECK(n == -1);
    n = imap_text_to_utf8(SPAN_LITERAL("UTF-8//TRANSLIT"), "abc", 3, out, sizeof(out));
    CHECK(n == -1);
    n = imap_text_to_utf8(SPAN_LITERAL("windows-1252"), "\x80\x81", 2, out, sizeof(out));
    CHECK_BYTES(out, (size_t)n, "€\xef\xbf\xbd", 6); /* 0x81 is unassigned */
    n = imap_text_to_utf8(SPAN_LITERAL("ISO-8859-1"), "\xe9\xe9\xe9", 3, out, 5);
    CHECK(n == 4); /* two whole characters fit */

    /* Streaming: an incomplete sequence waits for more input. */
    struct imap_text_conv conv;
    CHECK(imap_text_conv_open(&conv, SPAN_LITERAL("UTF-8")) == 0);
    size_t used;
    size_t w = imap_text_conv_run(&conv, "a\xc3", 2, false, out, sizeof(out), &used);
    CHECK(w == 1 && used == 1);
    w = imap_text_conv_run(&conv, "\xc3\xa9", 2, false, out, sizeof(out), &used);
    CHECK(w == 2 && used == 2);
    w = imap_text_conv_run(&conv, "\xc3", 1, true, out, sizeof(out), &used);
    CHECK(w == 3 && used == 1);
    imap_text_conv_close(&conv);
    CHECK(imap_text_conv_open(&conv, SPAN_LITERAL("SHIFT_JIS")) == 0);
    /* "日本" in Shift_JIS, fed with the second character split. */
    w = imap_text_conv_run(&conv, "\x93\xfa\x96", 3, false, out, sizeof(out), &used);
    CHECK(used == 2);
    CHECK_BYTES(out, w, "日", 3);
    w = imap_text_conv_run(&conv, "\x96\x7b", 2, true, out, sizeof(out), &used);
    CHECK(used == 2);
    CHECK_BYTES(out, w, "本", 3);
    imap_text_conv_close(&conv);
    imap_text_conv_close(&conv); /* harmless twice */
    CHECK(imap_text_conv_open(&conv, SPAN_LITERAL("no-such")) == -EINVAL);
    imap_text_conv_close(&conv);
    char longname[IMAP_TEXT_CHARSET_NAME_MAX + 2];
    memset(longname, 'a', sizeof(longname));
    CHECK(imap_text_conv_open(&conv, span_make(longname, sizeof(longname))) == -EINVAL);
}

static void
test_fold(void)
{
    static const struct header_case cases[] = {
        { "ABC xyz 123", "abc xyz 123" },
        { "ÀÉÎÕÜ Þ ×", "àéîõü þ ×" },
        { "Ÿ ŁÓDŹ Ğ Ž ſ", "ÿ łódź ğ ž s" },
        { "ΣΟΦΊΑ ς", "σοφία σ" },
        { "ЖЁЛТЫЙ", "жёлтый" },
        { "İ ß", "İ ß" },
        { "a\xffz", "a\xef\xbf\xbdz" },
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = imap_text_fold(cases[i].in, strlen(cases[i].in), out, sizeof(out));
        CHECK_BYTES(out, n, cases[i].want, strlen(cases[i].want));
    }
    size_t n = imap_text_fold("ABCD", 4, out, 2);
    CHECK_BYTES(out, n, "ab", 2);
}

static void
test_finder(void)
{
    CHECK(imap_text_contains("Hello World", 11, "lo w", 4));
    CHECK(!imap_text_contains("Hello World", 11, "low", 3));
    CHECK(imap_text_contains("x", 1, "", 0));
    CHECK(imap_text_contains("GRÜSSE", strlen("GRÜSSE"), "grüsse", strlen("grüsse")));
    CHECK(!imap_text_contains("ab", 2, "abc", 3));

    struct imap_text_finder f;
    imap_text_finder_init(&f, "lo w", 4);
    CHECK(!imap_text_finder_feed(&f, "Hel", 3));
    CHECK(!imap_text_finder_feed(&f, "lo", 2));
    CHECK(!imap_text_finder_feed(&f, "", 0));
    CHECK(imap_text_finder_feed(&f, " World", 6));
    CHECK(imap_text_finder_feed(&f, "more", 4));

    /* A character split between pieces, then folded. */
    imap_text_finder_init(&f, "café", strlen("café"));
    CHECK(!imap_text_finder_feed(&f, "CAF\xc3", 4));
    CHECK(imap_text_finder_feed(&f, "\x89!", 2));
    /* Split three ways. */
    imap_text_finder_init(&f, "€", 3);
    CHECK(!imap_text_finder_feed(&f, "\xe2", 1));
    CHECK(!imap_text_finder_feed(&f, "\x82", 1));
    CHECK(imap_text_finder_feed(&f, "\xac", 1));
    /* A broken sequence does not swallow what follows. */
    imap_text_finder_init(&f, "ab", 2);
    CHECK(!imap_text_finder_feed(&f, "\xe2", 1));
    CHECK(imap_text_finder_feed(&f, "ab", 2));

    /* Needle across the finder's internal buffer boundary, any offset. */
    static char text[3 * IMAP_TEXT_FINDER_BYTES];
    static char needle[IMAP_TEXT_NEEDLE_BYTES_MAX];
    memset(needle, 'n', sizeof(needle));
    needle[0] = 'x';
    for (size_t at = IMAP_TEXT_FINDER_BYTES - 1100; at < IMAP_TEXT_FINDER_BYTES + 10; at += 97) {
        memset(text, 'a', sizeof(text));
        memcpy(text + at, needle, sizeof(needle));
        CHECK(imap_text_contains(text, sizeof(text), needle, sizeof(needle)));
        imap_text_finder_init(&f, needle, sizeof(needle));
        bool found = false;
        for (size_t pos = 0; pos < sizeof(text); pos += 777) {
            size_t len = sizeof(text) - pos < 777 ? sizeof(text) - pos : 777;
            found = imap_text_finder_feed(&f, text + pos, len);
        }
        CHECK(found);
        text[at + sizeof(needle) - 1] = 'a';
        CHECK(!imap_text_contains(text, sizeof(text), needle, sizeof(needle)));
    }
}

/* Folded-text search, the reference the finder must agree with. */
static bool
fold_contains(const char *text, size_t len, const char *needle, size_t needle_len)
{
    static char folded[3 * (3 * IMAP_TEXT_FINDER_BYTES)];
    CHECK(3 * len <= sizeof(folded));
    size_t n = imap_text_fold(text, len, folded, sizeof(folded));
    return needle_len == 0 || memmem(folded, n, needle, needle_len) != NULL;
}

struct finder_end_case {
    const char *text;
    size_t      text_len;
    const char *needle_raw; /* folded before use */
    size_t      needle_raw_len;
    bool        want;
};

#define T(s) (s), (sizeof(s) - 1)

/* A text that ends inside a character: U+FFFD to imap_text_fold(), so to
 * the finder once imap_text_finder_end() is called (fuzz finding
 * imap_text-1), whatever the pieces. */
static void
test_finder_end(void)
{
    static const struct finder_end_case cases[] = {
        { T("\xef"), T("\xff"), true }, /* the fuzz reproducer */
        { T("ab\xe2\x82"), T("\xff"), true },
        { T("ab\xe2\x82"), T("B\xff"), true },
        { T("ab\xe2\x82"), T("\xff\xff"), false }, /* one sequence, one U+FFFD */
        { T("ab\xf0\x9f\x98"), T("b\xff"), true },
        { T("ab\xf0"), T("b\xff"), true },
        { T("ab\xc3"), T("AB"), true },
        { T("ab\xc3"), T("ab\xff\xff"), false },
        { T("ab"), T("\xff"), false },
        { T("ab\xe2\x82\xac"), T("\xff"), false }, /* complete: the euro sign */
        { T("ab\xe2\x82\xac"), T("b\xe2\x82\xac"), true },
        { T("\xe2\x82" "a\xe2"), T("\xff" "a\xff"), true },
        { T("\xe2\x82" "a\xe2"), T("\xff" "a\xff" "a"), false },
        { T("\xff\xc3"), T("\xff\xff"), true }, /* invalid, then truncated */
        { T("\xc3"), T("\xc3\x89"), false },
        { T("x\xc3"), T("x"), true },
        { T(""), T("\xff"), false },
        { T(""), T(""), true },
        { T("\xe2"), T(""), true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct finder_end_case *c = &cases[i];
        char needle[64];
        size_t needle_len = imap_text_fold(c->needle_raw, c->needle_raw_len, needle,
                                           sizeof(needle));
        size_t failed_before = unit_checks_failed;
        CHECK(fold_contains(c->text, c->text_len, needle, needle_len) == c->want);
        CHECK(imap_text_contains(c->text, c->text_len, needle, needle_len) == c->want);
        /* Whole, then one byte at a time, each ended. */
        struct imap_text_finder f;
        imap_text_finder_init(&f, needle, needle_len);
        (void)imap_text_finder_feed(&f, c->text, c->text_len);
        CHECK(imap_text_finder_end(&f) == c->want);
        CHECK(imap_text_finder_end(&f) == c->want); /* again: no change */
        imap_text_finder_init(&f, needle, needle_len);
        bool is_found = false;
        for (size_t k = 0; k < c->text_len; k++) {
            bool r = imap_text_finder_feed(&f, c->text + k, 1);
            CHECK(!is_found || r);
            is_found = r;
        }
        CHECK(!is_found || c->want);
        CHECK(imap_text_finder_end(&f) == c->want);
        if (unit_checks_failed != failed_before) {
            fprintf(stderr, "  finder end case %zu\n", i);
        }
    }

    struct imap_text_finder f;
    /* Nothing fed: only the empty needle is found. */
    imap_text_finder_init(&f, "a", 1);
    CHECK(!imap_text_finder_end(&f));
    imap_text_finder_init(&f, "", 0);
    CHECK(imap_text_finder_end(&f));
    /* Feeding after the end goes on after the U+FFFD. */
    imap_text_finder_init(&f, "\xef\xbf\xbd" "b", 4);
    CHECK(!imap_text_finder_feed(&f, "a\xe2", 2));
    CHECK(!imap_text_finder_end(&f));
    CHECK(imap_text_finder_feed(&f, "b", 1));
    CHECK(imap_text_finder_end(&f));
    /* Before the end, a truncated tail is not yet a character. */
    imap_text_finder_init(&f, "\xef\xbf\xbd", 3);
    CHECK(!imap_text_finder_feed(&f, "a\xf0\x9f", 3));
    CHECK(imap_text_finder_end(&f));

    /* The U+FFFD of the end lands where the finder's buffer is full: texts
     * of FINDER_BYTES - 5 .. FINDER_BYTES + 5 bytes plus a truncated
     * sequence, in one piece and in pieces of 1000. */
    static char text[IMAP_TEXT_FINDER_BYTES + 8];
    for (size_t len = IMAP_TEXT_FINDER_BYTES - 5; len <= IMAP_TEXT_FINDER_BYTES + 5; len++) {
        memset(text, 'a', len);
        text[len] = (char)0xe2;
        text[len + 1] = (char)0x82;
        CHECK(imap_text_contains(text, len + 2, "a\xef\xbf\xbd", 4));
        CHECK(!imap_text_contains(text, len + 2, "\xef\xbf\xbd" "a", 4));
        CHECK(fold_contains(text, len + 2, "a\xef\xbf\xbd", 4));
        imap_text_finder_init(&f, "a\xef\xbf\xbd", 4);
        for (size_t pos = 0; pos < len + 2; pos += 1000) {
            size_t n = len + 2 - pos < 1000 ? len + 2 - pos : 1000;
            CHECK(!imap_text_finder_feed(&f, text + pos, n));
        }
        CHECK(imap_text_finder_end(&f));
    }
}

/* Compiling commands. */

static struct imap_node nodes[IMAP_PARSER_NODES_DEFAULT];
static struct imap_search_key keys[IMAP_SEARCH_KEYS_DEFAULT];
static struct imap_seq_range ranges[IMAP_SEARCH_RANGES_DEFAULT];
static char arena[IMAP_SEARCH_TEXT_BYTES_DEFAULT];

struct limits {
    size_t keys_max;
    size_t ranges_max;
    size_t text_bytes;
};

static const struct limits default_limits = {
    IMAP_SEARCH_KEYS_DEFAULT, IMAP_SEARCH_RANGES_DEFAULT, IMAP_SEARCH_TEXT_BYTES_DEFAULT,
};

/* Frame and parse cmd (literals included), then compile its arguments. */
static enum imap_search_error
compile_with(const char *cmd, unsigned flags, const struct limits *lim, struct imap_search *s)
{
    static char buf[1 << 17];
    struct imap_reader_config config;
    imap_reader_config_default(&config, 1 << 20);
    struct imap_reader reader;
    imap_reader_init(&reader, &config, buf, sizeof(buf), reader_literals);
    size_t len = strlen(cmd);
    size_t pos = 0;
    bool have = false;
    while (pos < len) {
        size_t used;
        enum imap_reader_event ev = imap_reader_feed(&reader, cmd + pos, len - pos, &used);
        pos += used;
        if (ev == IMAP_READER_COMMAND) {
            have = true;
            break;
        }
        if (ev != IMAP_READER_NEED_MORE && ev != IMAP_READER_CONTINUE) {
            break;
        }
    }
    CHECK(have);
    if (!have) {
        return IMAP_SEARCH_SYNTAX;
    }
    struct imap_command_text text = imap_reader_command(&reader);
    struct imap_parsed parsed;
    /* UTF8=ACCEPT, so quoted strings may carry UTF-8 as clients send it. */
    enum imap_parse_error perr = imap_parser_parse(&text, IMAP_PARSE_F_UTF8, nodes,
                                                   IMAP_PARSER_NODES_DEFAULT, &parsed);
    CHECK(perr == IMAP_PARSE_OK);
    if (perr != IMAP_PARSE_OK) {
        fprintf(stderr, "  parse error %s for: %s\n", imap_parse_error_name(perr), cmd);
        return IMAP_SEARCH_SYNTAX;
    }
    CHECK(parsed.command == IMAP_CMD_SEARCH);
    struct imap_search_storage storage = {
        .keys = keys, .keys_max = lim->keys_max,
        .ranges = ranges, .ranges_max = lim->ranges_max,
        .text = arena, .text_bytes = lim->text_bytes,
    };
    /* Dirty storage: the compiler must not rely on zeroed memory. */
    memset(keys, 0xa5, sizeof(keys));
    return imap_search_parse(s, &parsed, imap_node_first_child(&parsed, 0), flags, &storage);
}

static enum imap_search_error
compile(const char *cmd, unsigned flags, struct imap_search *s)
{
    return compile_with(cmd, flags, &default_limits, s);
}

struct parse_case {
    const char            *cmd;
    unsigned               flags;
    enum imap_search_error want;
    unsigned               needs;
    bool                   is_esearch;
    unsigned               return_mask;
    bool                   is_uid;
};

#define R_MIN IMAP_SEARCH_RETURN_MIN
#define R_MAX IMAP_SEARCH_RETURN_MAX
#define R_ALL IMAP_SEARCH_RETURN_ALL
#define R_COUNT IMAP_SEARCH_RETURN_COUNT
#define N_H IMAP_SEARCH_NEEDS_HEADER
#define N_B IMAP_SEARCH_NEEDS_BODY

static const struct parse_case parse_cases[] = {
    { "a SEARCH ALL\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a UID SEARCH CHARSET UTF-8 OR FROM x (SINCE 1-Jan-2020 NOT SEEN)\r\n", 0, IMAP_SEARCH_OK,
      N_H, false, 0, true },
    { "a search charset us-ascii body hello\r\n", 0, IMAP_SEARCH_OK, N_H | N_B, false, 0, false },
    { "a SEARCH CHARSET \"utf-8\" TEXT x\r\n", 0, IMAP_SEARCH_OK, N_H | N_B, false, 0, false },
    { "a SEARCH 1:*,5 UNSEEN\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH * 3:2\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH HEADER \"X-Spam\" \"\"\r\n", 0, IMAP_SEARCH_OK, N_H, false, 0, false },
    { "a SEARCH SUBJECT {5}\r\nhello\r\n", 0, IMAP_SEARCH_OK, N_H, false, 0, false },
    { "a SEARCH SUBJECT \"say \\\"hi\\\"\"\r\n", 0, IMAP_SEARCH_OK, N_H, false, 0, false },
    { "a SEARCH BEFORE \"1-Feb-1994\" ON 29-Feb-2024 SINCE 31-dec-1999\r\n", 0, IMAP_SEARCH_OK,
      0, false, 0, false },
    { "a SEARCH SENTBEFORE 1-Feb-1994\r\n", 0, IMAP_SEARCH_OK, N_H, false, 0, false },
    { "a SEARCH RETURN () ALL\r\n", 0, IMAP_SEARCH_OK, 0, true, R_ALL, false },
    { "a UID SEARCH RETURN (MIN MAX COUNT) DELETED\r\n", 0, IMAP_SEARCH_OK, 0, true,
      R_MIN | R_MAX | R_COUNT, true },
    { "a SEARCH RETURN (count) CHARSET UTF-8 SEEN\r\n", 0, IMAP_SEARCH_OK, 0, true, R_COUNT,
      false },
    { "a SEARCH SEEN\r\n", IMAP_SEARCH_F_REV2, IMAP_SEARCH_OK, 0, true, R_ALL, false },
    { "a SEARCH RETURN (MIN) SEEN\r\n", IMAP_SEARCH_F_REV2, IMAP_SEARCH_OK, 0, true, R_MIN,
      false },
    { "a SEARCH MODSEQ \"/flags/\\\\Seen\" all 620162338\r\n", 0, IMAP_SEARCH_OK, 0, false, 0,
      false },
    { "a SEARCH MODSEQ \"/flags/$Junk\" priv 0\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH MODSEQ 9223372036854775807\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH OLDER 3600 YOUNGER 60\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH LARGER 18446744073709551615 SMALLER 0\r\n", 0, IMAP_SEARCH_OK, 0, false, 0,
      false },
    { "a SEARCH KEYWORD $Forwarded UNKEYWORD \\Seen\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH NOT NOT NOT SEEN\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH ((SEEN) (OR 1 2))\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH UID 1:*\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT UNANSWERED UNDELETED UNDRAFT "
      "UNFLAGGED\r\n", 0, IMAP_SEARCH_OK, 0, false, 0, false },
    { "a SEARCH TO a CC b BCC c\r\n", 0, IMAP_SEARCH_OK, N_H, false, 0, false },

    { "a SEARCH\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH CHARSET UTF-8\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH FOO\r\n", 0, IMAP_SEARCH_UNKNOWN_KEY, 0, false, 0, false },
    { "a SEARCH CHARSET KOI8-R TEXT x\r\n", 0, IMAP_SEARCH_BADCHARSET, 0, false, 0, false },
    { "a SEARCH CHARSET \"ISO-8859-1\" ALL\r\n", 0, IMAP_SEARCH_BADCHARSET, 0, false, 0, false },
    { "a SEARCH CHARSET\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH CHARSET (UTF-8) ALL\r\n", 0, IMAP_SEARCH_BAD_STRING, 0, false, 0, false },
    { "a SEARCH BEFORE 30-Feb-2020\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH BEFORE 29-Feb-2023\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH BEFORE 1-Foo-2020\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH BEFORE 1-Jan-20\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH BEFORE 001-Jan-2020\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH BEFORE 0-Jan-2020\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH SINCE Jan-1-2020\r\n", 0, IMAP_SEARCH_BAD_DATE, 0, false, 0, false },
    { "a SEARCH ON\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH LARGER -1\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH LARGER 18446744073709551616\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH SMALLER \"5\"\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH OLDER 0\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH YOUNGER 4294967296\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH 1:x\r\n", 0, IMAP_SEARCH_BAD_SET, 0, false, 0, false },
    { "a SEARCH 0\r\n", 0, IMAP_SEARCH_BAD_SET, 0, false, 0, false },
    { "a SEARCH 4294967296\r\n", 0, IMAP_SEARCH_BAD_SET, 0, false, 0, false },
    { "a SEARCH UID (1)\r\n", 0, IMAP_SEARCH_BAD_SET, 0, false, 0, false },
    { "a SEARCH UID $\r\n", 0, IMAP_SEARCH_NO_SAVE, 0, false, 0, false },
    { "a SEARCH $\r\n", 0, IMAP_SEARCH_NO_SAVE, 0, false, 0, false },
    { "a SEARCH RETURN (SAVE) ALL\r\n", 0, IMAP_SEARCH_NO_SAVE, 0, false, 0, false },
    { "a SEARCH RETURN (MIN FOO) ALL\r\n", 0, IMAP_SEARCH_BAD_RETURN, 0, false, 0, false },
    { "a SEARCH RETURN ((MIN)) ALL\r\n", 0, IMAP_SEARCH_BAD_RETURN, 0, false, 0, false },
    { "a SEARCH RETURN ALL\r\n", 0, IMAP_SEARCH_BAD_RETURN, 0, false, 0, false },
    { "a SEARCH RETURN (MIN)\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH OR SEEN\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH OR\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH NOT\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH (NOT)\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH ()\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH SEEN (ALL ())\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH FROM\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH FROM (x)\r\n", 0, IMAP_SEARCH_BAD_STRING, 0, false, 0, false },
    { "a SEARCH HEADER Subject\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH MODSEQ \"/flags/\\\\Seen\" bogus 5\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0,
      false },
    { "a SEARCH MODSEQ \"/other/x\" all 5\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH MODSEQ \"/flags/\\\\Seen\" all\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false,
      0, false },
    { "a SEARCH MODSEQ 9223372036854775808\r\n", 0, IMAP_SEARCH_BAD_NUMBER, 0, false, 0, false },
    { "a SEARCH \"ALL\"\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH NIL\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH KEYWORD \"x\"\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
    { "a SEARCH KEYWORD\r\n", 0, IMAP_SEARCH_MISSING_ARGUMENT, 0, false, 0, false },
    { "a SEARCH BODY[] x\r\n", 0, IMAP_SEARCH_SYNTAX, 0, false, 0, false },
};

static void
test_parse_table(void)
{
    for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct imap_search s;
        enum imap_search_error err = compile(c->cmd, c->flags, &s);
        CHECK(err == c->want);
        if (err != c->want) {
            fprintf(stderr, "  case %zu \"%s\": got %d (%s), want %d\n", i, c->cmd, (int)err,
                    imap_search_error_text(err), (int)c->want);
            continue;
        }
        CHECK(imap_search_error_text(err)[0] != '\0');
        if (err != IMAP_SEARCH_OK) {
            continue;
        }
        CHECK(imap_search_needs(&s) == c->needs);
        CHECK(s.is_esearch == c->is_esearch);
        CHECK(s.return_mask == c->return_mask);
        CHECK(s.is_uid == c->is_uid);
        CHECK(s.key_count >= 2);
    }
}

/* Limits at max - 1, max and max + 1. */
static void
test_parse_limits(void)
{
    static char cmd[1 << 16];
    struct imap_search s;

    /* Nesting: NOT x depth. */
    for (int depth = IMAP_PARSER_DEPTH_MAX - 1; depth <= IMAP_PARSER_DEPTH_MAX + 1; depth++) {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH ");
        for (int i = 0; i < depth; i++) {
            len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "NOT ");
        }
        snprintf(cmd + len, sizeof(cmd) - len, "SEEN\r\n");
        enum imap_search_error err = compile(cmd, 0, &s);
        CHECK(err == (depth <= IMAP_PARSER_DEPTH_MAX ? IMAP_SEARCH_OK : IMAP_SEARCH_TOO_DEEP));
    }
    /* "NOT (" pairs: two levels each; 16 pairs reach the maximum. */
    for (int pairs = 15; pairs <= 17; pairs++) {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH ");
        for (int i = 0; i < pairs; i++) {
            len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "NOT (");
        }
        len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "SEEN");
        for (int i = 0; i < pairs; i++) {
            len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, ")");
        }
        snprintf(cmd + len, sizeof(cmd) - len, "\r\n");
        enum imap_search_error err = compile(cmd, 0, &s);
        CHECK(err == (2 * pairs <= IMAP_PARSER_DEPTH_MAX ? IMAP_SEARCH_OK : IMAP_SEARCH_TOO_DEEP));
    }
    /* OR chains nest on the right. */
    {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH ");
        for (int i = 0; i < IMAP_PARSER_DEPTH_MAX + 1; i++) {
            len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, "OR SEEN ");
        }
        snprintf(cmd + len, sizeof(cmd) - len, "DRAFT\r\n");
        CHECK(compile(cmd, 0, &s) == IMAP_SEARCH_TOO_DEEP);
    }

    /* Keys: the root takes one; keys_max 8 holds 7 more. */
    struct limits lim = default_limits;
    lim.keys_max = 8;
    for (int n = 6; n <= 8; n++) {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH");
        for (int i = 0; i < n; i++) {
            len += (size_t)snprintf(cmd + len, sizeof(cmd) - len, " SEEN");
        }
        snprintf(cmd + len, sizeof(cmd) - len, "\r\n");
        enum imap_search_error err = compile_with(cmd, 0, &lim, &s);
        CHECK(err == (n <= 7 ? IMAP_SEARCH_OK : IMAP_SEARCH_TOO_MANY_KEYS));
    }
    lim.keys_max = 1;
    CHECK(compile_with("a SEARCH ALL\r\n", 0, &lim, &s) == IMAP_SEARCH_TOO_MANY_KEYS);

    /* Ranges: a set may use half of what is left. */
    lim = default_limits;
    lim.ranges_max = 8;
    CHECK(compile_with("a SEARCH 1,3,5,7\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);
    CHECK(compile_with("a SEARCH 1,3,5,7,9\r\n", 0, &lim, &s) == IMAP_SEARCH_TOO_MANY_RANGES);
    CHECK(compile_with("a SEARCH 1,3,5 UID 1,3\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);
    CHECK(compile_with("a SEARCH 1,3,5 UID 1,3,5\r\n", 0, &lim, &s) ==
          IMAP_SEARCH_TOO_MANY_RANGES);
    CHECK(compile_with("a SEARCH 1,3,5,7 UID 1\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);
    CHECK(compile_with("a SEARCH 1,3,5,7 1 UID 1\r\n", 0, &lim, &s) ==
          IMAP_SEARCH_TOO_MANY_RANGES);
    CHECK(compile_with("a SEARCH 1:*,2:*,5\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);

    /* String length: IMAP_TEXT_NEEDLE_BYTES_MAX - 1, max, max + 1. */
    for (size_t n = IMAP_TEXT_NEEDLE_BYTES_MAX - 1; n <= IMAP_TEXT_NEEDLE_BYTES_MAX + 1; n++) {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH SUBJECT \"");
        memset(cmd + len, 'q', n);
        len += n;
        snprintf(cmd + len, sizeof(cmd) - len, "\"\r\n");
        enum imap_search_error err = compile(cmd, 0, &s);
        CHECK(err == (n <= IMAP_TEXT_NEEDLE_BYTES_MAX ? IMAP_SEARCH_OK
                                                      : IMAP_SEARCH_STRING_TOO_LONG));
        /* As a literal too. */
        len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH BODY {%zu}\r\n", n);
        memset(cmd + len, 'q', n);
        len += n;
        snprintf(cmd + len, sizeof(cmd) - len, "\r\n");
        err = compile(cmd, 0, &s);
        CHECK(err == (n <= IMAP_TEXT_NEEDLE_BYTES_MAX ? IMAP_SEARCH_OK
                                                      : IMAP_SEARCH_STRING_TOO_LONG));
    }
    /* Folding may grow a string (invalid bytes become U+FFFD): checked on
     * the folded length. */
    {
        size_t len = (size_t)snprintf(cmd, sizeof(cmd), "a SEARCH BODY {400}\r\n");
        memset(cmd + len, 0xff, 400);
        len += 400;
        snprintf(cmd + len, sizeof(cmd) - len, "\r\n");
        CHECK(compile(cmd, 0, &s) == IMAP_SEARCH_STRING_TOO_LONG);
    }

    /* Arena: "abc" + "def" need 6 bytes. */
    lim = default_limits;
    lim.text_bytes = 6;
    CHECK(compile_with("a SEARCH FROM abc TO def\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);
    lim.text_bytes = 5;
    CHECK(compile_with("a SEARCH FROM abc TO def\r\n", 0, &lim, &s) == IMAP_SEARCH_TEXT_FULL);
    lim.text_bytes = 0;
    CHECK(compile_with("a SEARCH SEEN\r\n", 0, &lim, &s) == IMAP_SEARCH_OK);
}

/* Matching. */

static const char msg_plain[] =
    "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <jm@example.org>\r\n"
    "To: alice@example.com,\r\n bob@example.net\r\n"
    "Subject: =?ISO-8859-1?Q?Caf=E9?= meeting\r\n"
    "Date: Mon, 1 Jan 2024 23:30:00 -0800\r\n"
    "X-Spam: yes\r\n"
    "X-Empty:\r\n"
    "\r\n"
    "Hello plain body text.\r\n";

static const char msg_base64[] =
    "From: x@example.org\r\n"
    "Subject: =?KOI8-R?B?8NLJ18XUIM3J0g==?=\r\n"
    "Date: 2 Jan 24 00:10 +0100\r\n"
    "Content-Type: text/plain; charset=\"utf-8\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "R3LDvMOfZSBhdXMgS8O2bG4sIHNjaMO2bmUg\r\n"
    "R3LDvMOfZSENCg==\r\n";

static const char msg_qp[] =
    "From: y@example.org\r\n"
    "Subject: qp\r\n"
    "Date: garbage\r\n"
    "Content-Type: text/plain; charset=ISO-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 au lait, tr=E8s bon=\r\n"
    "ne soft break. A=3DB\r\n";

static const char msg_multi[] =
    "From: z@example.org\r\n"
    "Subject: alternative\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble words\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "Content-Transfer-Encoding: 7bit\r\n"
    "\r\n"
    "Plain alternative here\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PHA+SFRNTCDDnGJlcnJhc2NodW5nPC9wPg0K\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "c2VjcmV0IGF0dGFjaG1lbnQgYnl0ZXM=\r\n"
    "--outer--\r\n";

static const char msg_nested[] =
    "From: outer@example.org\r\n"
    "Subject: Fwd: see attached\r\n"
    "Content-Type: multipart/mixed; boundary=b1\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "See the attached message.\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.org\r\n"
    "Subject: =?UTF-8?B?w5xuw69jw7hkw6kgaW5uZXI=?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Inner body with =C3=BCmlaut\r\n"
    "--b1--\r\n";

static const char msg_nodate[] =
    "From: nodate@example.org\r\n"
    "Subject: no date\r\n"
    "\r\n"
    "body\r\n";

static const char *const keyword_names[] = { "$Forwarded", "Work", "$Junk" };

enum msg_index { M_PLAIN, M_BASE64, M_QP, M_MULTI, M_NESTED, M_NODATE, M_COUNT };

static struct imap_message messages[M_COUNT];
static struct imap_mime_part mime_parts[64];

/* 2024-01-02 07:30:00 UTC */
#define T_JAN2_0730Z 1704180600

static void
messages_init(void)
{
    static const char *const data[M_COUNT] = {
        msg_plain, msg_base64, msg_qp, msg_multi, msg_nested, msg_nodate,
    };
    for (int i = 0; i < M_COUNT; i++) {
        struct imap_message *m = &messages[i];
        memset(m, 0, sizeof(*m));
        m->seq = (uint32_t)i + 1;
        m->uid = (uint32_t)(i + 1) * 10;
        m->data = data[i];
        m->data_len = strlen(data[i]);
        m->size = 1000 * ((uint64_t)i + 1);
        m->modseq = 100 + (uint64_t)i;
        m->keyword_names = keyword_names;
        m->keyword_count = 3;
        m->internal_date = T_JAN2_0730Z;
        m->internal_date_tz_minutes = 0;
    }
    messages[M_PLAIN].flags = IMAP_FLAG_SEEN | IMAP_FLAG_RECENT;
    messages[M_PLAIN].keyword_mask = 0x1;
    messages[M_BASE64].flags = IMAP_FLAG_RECENT | IMAP_FLAG_FLAGGED;
    messages[M_BASE64].keyword_mask = 0x6;
    messages[M_QP].flags = IMAP_FLAG_ANSWERED | IMAP_FLAG_DELETED | IMAP_FLAG_DRAFT;
    /* 2024-01-01 23:30 at -08:00. */
    messages[M_PLAIN].internal_date_tz_minutes = -480;
    /* 2024-01-02 08:30 at +01:00. */
    messages[M_BASE64].internal_date_tz_minutes = 60;
    /* 2024-01-01 23:59:59 UTC, and 2024-01-02 00:00:00 UTC. */
    messages[M_QP].internal_date = T_JAN2_0730Z - 7 * 3600 - 30 * 60 - 1;
    messages[M_MULTI].internal_date = T_JAN2_0730Z - 7 * 3600 - 30 * 60;
    /* 2024-01-02 16:30 at +09:00 is still 07:30Z. */
    messages[M_NESTED].internal_date_tz_minutes = 540;
    /* 2024-01-02 00:29 at -07:00 = 07:29Z. */
    messages[M_NODATE].internal_date = T_JAN2_0730Z - 60;
    messages[M_NODATE].internal_date_tz_minutes = -420;
}

struct match_case {
    const char *cmd;
    const char *want; /* one character per message, '1' = match */
};

static const struct match_case match_cases[] = {
    { "a SEARCH ALL", "111111" },
    { "a SEARCH SEEN", "100000" },
    { "a SEARCH UNSEEN", "011111" },
    { "a SEARCH NEW", "010000" },
    { "a SEARCH OLD", "001111" },
    { "a SEARCH RECENT", "110000" },
    { "a SEARCH FLAGGED", "010000" },
    { "a SEARCH ANSWERED DELETED DRAFT", "001000" },
    { "a SEARCH UNANSWERED UNDELETED UNDRAFT UNFLAGGED", "100111" },
    { "a SEARCH KEYWORD $forwarded", "100000" },
    { "a SEARCH KEYWORD Work", "010000" },
    { "a SEARCH KEYWORD NoSuchKeyword", "000000" },
    { "a SEARCH UNKEYWORD $Junk", "101111" },
    { "a SEARCH KEYWORD \\Seen", "100000" },
    { "a SEARCH UNKEYWORD \\Seen", "011111" },
    /* Sets: messages = 6, uid_max = 60. */
    { "a SEARCH 2:*", "011111" },
    { "a SEARCH *", "000001" },
    { "a SEARCH 1,3,5", "101010" },
    { "a SEARCH 5:3", "001110" },
    { "a SEARCH 7:*", "000001" },
    { "a SEARCH 7:8", "000000" },
    { "a SEARCH UID 20:30", "011000" },
    { "a SEARCH UID 100:*", "000001" },
    { "a SEARCH UID *", "000001" },
    { "a SEARCH UID 1:15,55:70", "100001" },
    { "a SEARCH NOT 1:2", "001111" },
    /* Boolean structure. */
    { "a SEARCH OR SEEN FLAGGED", "110000" },
    { "a SEARCH OR SEEN NOT FLAGGED", "101111" },
    { "a SEARCH NOT (SEEN RECENT)", "011111" },
    { "a SEARCH OR (SEEN RECENT) (DELETED DRAFT)", "101000" },
    { "a SEARCH NOT OR SEEN OR FLAGGED DELETED", "000111" },
    { "a SEARCH (((((SEEN)))))", "100000" },
    { "a SEARCH RECENT NOT NOT SEEN", "100000" },
    /* Sizes, modseq. */
    { "a SEARCH LARGER 3000", "000111" },
    { "a SEARCH LARGER 2999", "001111" },
    { "a SEARCH SMALLER 1001", "100000" },
    { "a SEARCH SMALLER 1000", "000000" },
    { "a SEARCH NOT SMALLER 2000 NOT LARGER 4000", "011100" },
    { "a SEARCH MODSEQ 103", "000111" },
    { "a SEARCH MODSEQ \"/flags/\\\\Seen\" shared 105", "000001" },
    /* Headers, RFC 2047. */
    { "a SEARCH FROM \"jörg\"", "100000" },
    { "a SEARCH FROM \"JÖRG MÜLLER\"", "100000" },
    { "a SEARCH FROM example.org", "111111" },
    { "a SEARCH FROM inner", "000000" },
    { "a SEARCH TO bob", "100000" },
    { "a SEARCH TO \"com, bob\"", "100000" },
    { "a SEARCH TO \"com,  bob\"", "000000" },
    { "a SEARCH CHARSET UTF-8 SUBJECT {5}\r\ncafé", "100000" },
    { "a SEARCH CC x", "000000" },
    { "a SEARCH SUBJECT \"café meeting\"", "100000" },
    { "a SEARCH SUBJECT \"CAFÉ\"", "100000" },
    { "a SEARCH SUBJECT cafe", "000000" },
    { "a SEARCH SUBJECT \"привет\"", "010000" },
    { "a SEARCH SUBJECT \"\"", "111111" },
    { "a SEARCH SUBJECT \"ünïcødé\"", "000000" },
    { "a SEARCH HEADER X-Spam \"\"", "100000" },
    { "a SEARCH HEADER x-spam YES", "100000" },
    { "a SEARCH HEADER X-Empty \"\"", "100000" },
    { "a SEARCH HEADER X-Empty x", "000000" },
    { "a SEARCH HEADER Content-Type multipart", "000110" },
    { "a SEARCH NOT HEADER X-Spam \"\"", "011111" },
    /* Bodies. */
    { "a SEARCH BODY \"hello plain\"", "100000" },
    { "a SEARCH BODY \"grüße aus köln\"", "010000" },
    { "a SEARCH BODY \"SCHÖNE\"", "010000" },
    { "a SEARCH BODY \"café au lait, très bonne soft\"", "001000" },
    { "a SEARCH BODY \"A=B\"", "001000" },
    { "a SEARCH BODY \"=3D\"", "000000" },
    { "a SEARCH BODY \"plain alternative\"", "000100" },
    { "a SEARCH BODY \"überraschung\"", "000100" },
    { "a SEARCH BODY secret", "000000" },
    { "a SEARCH BODY preamble", "000000" },
    { "a SEARCH BODY \"inner body with ümlaut\"", "000010" },
    { "a SEARCH BODY \"see the attached\"", "000010" },
    { "a SEARCH BODY \"ünïcødé\"", "000000" },
    { "a SEARCH BODY \"\"", "111111" },
    { "a SEARCH BODY meeting", "000000" },
    /* TEXT: headers too, attached messages' headers included. */
    { "a SEARCH TEXT meeting", "100000" },
    { "a SEARCH TEXT \"subject: café\"", "100000" },
    { "a SEARCH TEXT \"ünïcødé\"", "000010" },
    { "a SEARCH TEXT \"inner@example\"", "000010" },
    { "a SEARCH TEXT \"ümlaut\"", "000010" },
    { "a SEARCH TEXT secret", "000000" },
    { "a SEARCH TEXT \"köln\"", "010000" },
    /* Internal dates in their own zones. */
    { "a SEARCH ON 1-Jan-2024", "101000" },
    { "a SEARCH ON 2-Jan-2024", "010111" },
    { "a SEARCH BEFORE 2-Jan-2024", "101000" },
    { "a SEARCH SINCE 2-Jan-2024", "010111" },
    { "a SEARCH SINCE 3-Jan-2024", "000000" },
    { "a SEARCH BEFORE 1-Jan-2024", "000000" },
    /* Sent dates: the Date: field's own calendar date; garbage or none
     * falls back to the internal date. */
    { "a SEARCH SENTON 1-Jan-2024", "101000" },
    { "a SEARCH SENTON 2-Jan-2024", "010111" },
    { "a SEARCH SENTBEFORE 2-Jan-2024", "101000" },
    { "a SEARCH SENTSINCE 2-Jan-2024", "010111" },
    /* now = 07:30Z + 1 hour. */
    { "a SEARCH YOUNGER 3600", "110010" },
    { "a SEARCH OLDER 3600", "111111" },
    { "a SEARCH OLDER 3601", "001101" },
    { "a SEARCH YOUNGER 3599", "000000" },
    { "a SEARCH YOUNGER 3660", "110011" },
    { "a SEARCH OLDER 3660", "001101" },
    { "a SEARCH OLDER 3661", "001100" },
    /* Mixed. */
    { "a SEARCH CHARSET UTF-8 OR FROM \"jörg\" (SINCE 2-Jan-2024 NOT SEEN BODY \"köln\")",
      "110000" },
};

static void
test_match(void)
{
    messages_init();
    struct imap_search_context ctx = {
        .messages = M_COUNT,
        .uid_max = 60,
        .now = T_JAN2_0730Z + 3600,
        .parts = mime_parts,
        .parts_cap = sizeof(mime_parts) / sizeof(mime_parts[0]),
    };
    char cmd[512];
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        snprintf(cmd, sizeof(cmd), "%s\r\n", c->cmd);
        struct imap_search s;
        enum imap_search_error err = compile(cmd, 0, &s);
        CHECK(err == IMAP_SEARCH_OK);
        if (err != IMAP_SEARCH_OK) {
            fprintf(stderr, "  compile \"%s\": %s\n", c->cmd, imap_search_error_text(err));
            continue;
        }
        char got[M_COUNT + 1];
        for (int k = 0; k < M_COUNT; k++) {
            got[k] = imap_search_match(&s, &messages[k], &ctx) ? '1' : '0';
        }
        got[M_COUNT] = '\0';
        CHECK_STR(got, c->want);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "  for: %s\n", c->cmd);
        }
    }

    /* Without content, text keys do not match; flags still do. */
    struct imap_message bare = messages[M_PLAIN];
    bare.data = NULL;
    bare.data_len = 0;
    struct imap_search s;
    CHECK(compile("a SEARCH OR SUBJECT \"café\" SEEN\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &bare, &ctx));
    CHECK(compile("a SEARCH OR SUBJECT \"café\" BODY x\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_match(&s, &bare, &ctx));
    CHECK(compile("a SEARCH SENTON 1-Jan-2024\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &bare, &ctx)); /* the internal date, at -08:00 */

    /* A header-only load is enough for header keys. */
    struct imap_message head = messages[M_PLAIN];
    head.data_len = (size_t)(strstr(msg_plain, "\r\n\r\n") - msg_plain) + 4;
    CHECK(compile("a SEARCH FROM \"jörg\" SENTON 1-Jan-2024\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_needs(&s) == IMAP_SEARCH_NEEDS_HEADER);
    CHECK(imap_search_match(&s, &head, &ctx));

    /* Empty mailbox: "*" matches nothing. */
    struct imap_search_context empty = ctx;
    empty.messages = 0;
    empty.uid_max = 0;
    CHECK(compile("a SEARCH 1:*\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &messages[0], &ctx));
    CHECK(!imap_search_match(&s, &messages[0], &empty));

    /* A MIME part array of one: the message is one text part; still
     * searchable as a whole. */
    struct imap_search_context one = ctx;
    one.parts_cap = 1;
    CHECK(compile("a SEARCH BODY \"hello plain\"\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &messages[M_PLAIN], &one));

    /* Dates far from now: negative internal dates, before 1970. */
    struct imap_message old = messages[M_NODATE];
    old.internal_date = -86400 * 365; /* 1969-01-01 00:00Z */
    old.internal_date_tz_minutes = 0;
    old.data = NULL;
    old.data_len = 0;
    CHECK(compile("a SEARCH ON 1-Jan-1969\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &old, &ctx));
    CHECK(compile("a SEARCH BEFORE 1-Jan-1970 SINCE 1-Jan-1969\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &old, &ctx));
    old.internal_date_tz_minutes = -1; /* 1968-12-31 23:59 */
    CHECK(!imap_search_match(&s, &old, &ctx));
    CHECK(compile("a SEARCH ON 31-Dec-1968\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &old, &ctx));
}

/* SENT* read the Date: field's own calendar date; anything unreadable
 * falls back to the internal date (5-Jan-2024 here). */
struct sent_case {
    const char *date; /* the Date: field value, NULL: no field */
    const char *want; /* the day SENTON must match */
};

static const struct sent_case sent_cases[] = {
    { "Tue, 2 Jan 2024 00:30:00 +1400", "2-Jan-2024" },
    { "Mon, 1 Jan 2024 23:59:59 -1200", "1-Jan-2024" },
    { "1 Jan 2024 23:59 GMT", "1-Jan-2024" },
    { "  (comment) Wed , 03 mar 2021 10:00:00 +0000 (UTC)", "3-Mar-2021" },
    { "Thu, 29 Feb 2024 12:00:00 +0000", "29-Feb-2024" },
    { "Fri, 1 Jan 99 12:00:00 +0000", "1-Jan-1999" },
    { "Fri, 1 Jan 49 12:00:00 +0000", "1-Jan-2049" },
    { "Fri, 1 Jan 101 12:00:00 +0000", "1-Jan-2001" },
    { "1 Jan 2024", "5-Jan-2024" },          /* no time */
    { "30 Feb 2024 12:00 +0000", "5-Jan-2024" },
    { "1 Foo 2024 12:00 +0000", "5-Jan-2024" },
    { "1 Jan 2024 25:00 +0000", "5-Jan-2024" },
    { "yesterday", "5-Jan-2024" },
    { "", "5-Jan-2024" },
    { NULL, "5-Jan-2024" },
};

static void
test_sent_dates(void)
{
    struct imap_search_context ctx = { .messages = 1, .uid_max = 1 };
    char data[256];
    char cmd[128];
    for (size_t i = 0; i < sizeof(sent_cases) / sizeof(sent_cases[0]); i++) {
        const struct sent_case *c = &sent_cases[i];
        int len = c->date != NULL ? snprintf(data, sizeof(data),
                                             "Subject: x\r\nDate: %s\r\n\r\nbody\r\n", c->date)
                                  : snprintf(data, sizeof(data), "Subject: x\r\n\r\nbody\r\n");
        struct imap_message m = {
            .seq = 1, .uid = 1, .data = data, .data_len = (size_t)len,
            .internal_date = 1704412800 + 3600, /* 2024-01-05 01:00Z */
        };
        struct imap_search s;
        snprintf(cmd, sizeof(cmd), "a SEARCH SENTON %s\r\n", c->want);
        CHECK(compile(cmd, 0, &s) == IMAP_SEARCH_OK);
        bool ok = imap_search_match(&s, &m, &ctx);
        CHECK(ok);
        snprintf(cmd, sizeof(cmd), "a SEARCH SENTBEFORE %s\r\n", c->want);
        CHECK(compile(cmd, 0, &s) == IMAP_SEARCH_OK);
        CHECK(!imap_search_match(&s, &m, &ctx));
        snprintf(cmd, sizeof(cmd), "a SEARCH SENTSINCE %s\r\n", c->want);
        CHECK(compile(cmd, 0, &s) == IMAP_SEARCH_OK);
        CHECK(imap_search_match(&s, &m, &ctx));
        if (!ok) {
            fprintf(stderr, "  Date: %s\n", c->date != NULL ? c->date : "(none)");
        }
    }
}

/* Long bodies: the chunked decoder must find text at every chunk seam. */
static void
test_long_bodies(void)
{
    static char msg[200000];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    struct imap_search_context ctx = {
        .messages = 1, .uid_max = 1, .parts = mime_parts, .parts_cap = 64,
    };
    struct imap_search s;
    CHECK(compile("a SEARCH BODY \"Ünïcødé NEEDLE\"\r\n", 0, &s) == IMAP_SEARCH_OK);
    static const char needle[] = "ünïcødé needle";
    const size_t nlen = strlen(needle);
    for (size_t at = 4000; at < 4200; at += 13) {
        /* Raw text: filler, the needle at offset at, filler. */
        static char raw[12000];
        memset(raw, 'x', sizeof(raw));
        memcpy(raw + at, needle, nlen);
        for (int enc = 0; enc < 3; enc++) {
            size_t len = (size_t)snprintf(msg, sizeof(msg),
                                          "Content-Type: text/plain; charset=utf-8\r\n"
                                          "Content-Transfer-Encoding: %s\r\n\r\n",
                                          enc == 0 ? "8bit" : enc == 1 ? "base64"
                                                                       : "quoted-printable");
            if (enc == 0) {
                memcpy(msg + len, raw, sizeof(raw));
                len += sizeof(raw);
            } else if (enc == 1) {
                size_t line = 0;
                for (size_t i = 0; i < sizeof(raw); i += 3) {
                    unsigned char a = (unsigned char)raw[i];
                    unsigned char b = i + 1 < sizeof(raw) ? (unsigned char)raw[i + 1] : 0;
                    unsigned char c = i + 2 < sizeof(raw) ? (unsigned char)raw[i + 2] : 0;
                    msg[len++] = b64[a >> 2];
                    msg[len++] = b64[((a & 3) << 4) | (b >> 4)];
                    msg[len++] = i + 1 < sizeof(raw) ? b64[((b & 15) << 2) | (c >> 6)] : '=';
                    msg[len++] = i + 2 < sizeof(raw) ? b64[c & 63] : '=';
                    if (++line == 19) {
                        msg[len++] = '\r';
                        msg[len++] = '\n';
                        line = 0;
                    }
                }
            } else {
                /* Every byte as =XX, soft breaks every 25 bytes: 75 per line. */
                for (size_t i = 0; i < sizeof(raw); i++) {
                    len += (size_t)snprintf(msg + len, sizeof(msg) - len, "=%02X",
                                            (unsigned char)raw[i]);
                    if (i % 25 == 24) {
                        memcpy(msg + len, "=\r\n", 3);
                        len += 3;
                    }
                }
            }
            memcpy(msg + len, "\r\n", 2);
            len += 2;
            struct imap_message m = { .seq = 1, .uid = 1, .data = msg, .data_len = len,
                                      .size = len };
            bool ok = imap_search_match(&s, &m, &ctx);
            CHECK(ok);
            if (!ok) {
                fprintf(stderr, "  long body enc %d at %zu\n", enc, at);
            }
        }
    }
    /* QP with one long line and no line breaks at all. */
    size_t len = (size_t)snprintf(msg, sizeof(msg),
                                  "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    for (size_t i = 0; i < 3000; i++) {
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "ab =3D ");
    }
    len += (size_t)snprintf(msg + len, sizeof(msg) - len, "end=20marker");
    CHECK(compile("a SEARCH BODY \"ab = ab = ab\"\r\n", 0, &s) == IMAP_SEARCH_OK);
    struct imap_message m = { .seq = 1, .uid = 1, .data = msg, .data_len = len, .size = len };
    CHECK(imap_search_match(&s, &m, &ctx));
    CHECK(compile("a SEARCH BODY \"end marker\"\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &m, &ctx));
    CHECK(compile("a SEARCH BODY \"ab  ab\"\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_match(&s, &m, &ctx));
}


/* The body text answers as the message does. */

static const char *const body_fixture_names[] = {
    "alternative_mixed", "boundary_at_start", "cr_only", "cte_comment", "deep", "digest",
    "disposition", "dup_ctype", "duplicates", "eightbit_headers", "empty",
    "empty_subject_fold", "encoded_words", "forwarded", "garbage_after_boundary",
    "garbage_ctype", "garbage_ctype2", "groups", "hdr_boundary", "header_only", "lf_only",
    "missing_boundary", "multipart_text_lines", "no_blank", "no_boundary_param",
    "param_weird", "plain", "quoting", "rfc2231_a", "rfc2231_b", "rfc2231_c", "rfc2231_d",
    "rfc822_default_charset", "same_boundary", "unclosed", "upper", "weird_addresses",
    "whitespace_boundary",
};

/* Two text parts side by side ("...endQ" | "Wstart..."), nested inside an
 * alternative, an attached message with its own multipart, latin-1 base64,
 * UTF-8 QP with a character split by a soft break, an unknown charset and
 * text ending inside a character. */
static const char body_msg_nested[] =
    "From: a@example.org\r\n"
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"
    "Content-Type: multipart/mixed; boundary=\"o\"\r\n"
    "\r\n"
    "--o\r\n"
    "Content-Type: multipart/alternative; boundary=\"i\"\r\n"
    "\r\n"
    "--i\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "R3L832UgYXVzIEv2bG4gxNYgZW5kUQ==\r\n"
    "--i\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Wstart Gr=C3=\r\n"
    "=BC=C3=9Fe =C3=84=C3=96 =E2=82\r\n"
    "--i--\r\n"
    "--o\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: inner@example.org\r\n"
    "Subject: =?ISO-8859-1?Q?=C4rger_=FCber?= inner\r\n"
    "Content-Type: multipart/mixed; boundary=\"n\"\r\n"
    "\r\n"
    "--n\r\n"
    "Content-Type: text/plain; charset=x-no-such-charset\r\n"
    "\r\n"
    "unknown \xc3\xa4 \xff\xfe bytes\r\n"
    "--n\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "ends inside \xe2\x82\r\n"
    "--n\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "c2VjcmV0IGF0dGFjaG1lbnQgYnl0ZXM=\r\n"
    "--n--\r\n"
    "--o\r\n"
    "Content-Type: text/plain; charset=windows-1252\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "=80 euro, =C4=D6 caps\r\n"
    "--o\r\n"
    "Content-Type: text/plain; charset=utf-16le\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "RwByAPwA3wBlAA==\r\n"
    "--o--\r\n";

/* One part whose last byte starts a character: U+FFFD at its end. */
static const char body_msg_tail[] =
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "YWJjIMOkw7bDvCDD\r\n";

static const char *const body_needles[] = {
    "", "a", "hello", "HeLLo", "body", "text", "grüße", "GRÜSSE", "GRÜßE", "ÄÖ", "äö",
    "köln", "endq", "endqw", "qw", "q\xef\xbf\xbdw", "wstart", "€ euro", "äö caps",
    "\xef\xbf\xbd", "inside \xef\xbf\xbd", "c \xef\xbf\xbd", "ärger", "inner", "subject",
    "from: inner", "secret", "unknown ä", "\xef\xbf\xbd\xef\xbf\xbd bytes", "grüß",
    "\r\n", "e\r\n--", "=c3", "cg==", "r3l",
};

static struct imap_mime_part body_parts[IMAP_MIME_PARTS_MAX];
static char body_text_buf[1 << 20];

struct body_tally {
    size_t compared;
    size_t matched;
};

/* The header block as the index's header cache keeps it (up to and with
 * the blank line), or the whole message when there is none. */
static size_t
body_header_len(const char *data, size_t len)
{
    if (len >= 2 && data[0] == '\r' && data[1] == '\n') {
        return 2;
    }
    const char *end = memmem(data, len, "\r\n\r\n", 4);
    return end != NULL ? (size_t)(end - data) + 4 : len;
}

/* BODY and TEXT with needle (bytes, any): the same answer from the
 * message and from its body text with only the header block as data. */
static void
body_compare(const char *name, const char *data, size_t len, const char *text,
             size_t body_len, size_t text_len, const char *needle, size_t needle_len,
             struct body_tally *tally)
{
    static const char *const key_names[] = { "BODY", "TEXT" };
    struct imap_search_context ctx = {
        .messages = 1, .uid_max = 1, .parts = body_parts, .parts_cap = IMAP_MIME_PARTS_MAX,
    };
    for (size_t k = 0; k < 2; k++) {
        static char cmd[4096];
        int n = snprintf(cmd, sizeof(cmd), "a SEARCH CHARSET UTF-8 %s {%zu}\r\n", key_names[k],
                         needle_len);
        if (n < 0 || (size_t)n + needle_len + 3 > sizeof(cmd)) {
            continue;
        }
        memcpy(cmd + n, needle, needle_len);
        memcpy(cmd + (size_t)n + needle_len, "\r\n", 3);
        struct imap_search s;
        if (compile(cmd, 0, &s) != IMAP_SEARCH_OK) {
            continue; /* a needle the parser refuses (NUL) is nobody's question */
        }
        CHECK(imap_search_body_text_suffices(&s));
        struct imap_message full = { .seq = 1, .uid = 1, .data = data, .data_len = len,
                                     .size = len };
        struct imap_message cached = full;
        cached.data_len = body_header_len(data, len);
        cached.body_folded = text;
        cached.body_folded_len = body_len;
        cached.body_folded_text_len = text_len;
        bool want = imap_search_match(&s, &full, &ctx);
        bool got = imap_search_match(&s, &cached, &ctx);
        CHECK(got == want);
        if (got != want) {
            fprintf(stderr, "  %s %s {", name, key_names[k]);
            unit_print_escaped((const unsigned char *)needle, needle_len);
            fprintf(stderr, "}: cached %d, streaming %d\n", got, want);
        }
        tally->compared++;
        tally->matched += want;
    }
}

/* Start of the UTF-8 character at or before pos. */
static size_t
body_char_start(const char *text, size_t pos)
{
    while (pos > 0 && ((unsigned char)text[pos] & 0xc0) == 0x80) {
        pos--;
    }
    return pos;
}

static void
body_check_message(const char *name, const char *data, size_t len, struct body_tally *tally)
{
    size_t body_len = 0;
    size_t text_len = 0;
    int rc = imap_search_body_text(data, len, body_parts, IMAP_MIME_PARTS_MAX, body_text_buf,
                                   sizeof(body_text_buf), &body_len, &text_len);
    CHECK(rc == 0);
    CHECK(body_len <= text_len);
    if (rc != 0) {
        fprintf(stderr, "  %s: body text %d\n", name, rc);
        return;
    }
    /* An exact-size copy, so ASan sees a read past its end. */
    char *text = malloc(text_len > 0 ? text_len : 1);
    memcpy(text, body_text_buf, text_len);
    for (size_t i = 0; i < sizeof(body_needles) / sizeof(body_needles[0]); i++) {
        body_compare(name, data, len, text, body_len, text_len, body_needles[i],
                     strlen(body_needles[i]), tally);
    }
    /* Needles cut from the text: windows of 1, 2 and 7 characters, and the
     * last character of each part with the first of the next. */
    char needle[64];
    for (size_t at = 0; at < text_len; at += 23) {
        size_t start = body_char_start(text, at);
        for (size_t chars = 1; chars <= 7; chars += chars == 1 ? 1 : 5) {
            size_t end = start;
            for (size_t c = 0; c < chars && end < text_len; c++) {
                end++;
                while (end < text_len && ((unsigned char)text[end] & 0xc0) == 0x80) {
                    end++;
                }
            }
            if (memchr(text + start, IMAP_SEARCH_BODY_TEXT_SEPARATOR, end - start) == NULL) {
                body_compare(name, data, len, text, body_len, text_len, text + start,
                             end - start, tally);
            }
        }
    }
    for (size_t at = 1; at + 1 < text_len; at++) {
        if (text[at] != IMAP_SEARCH_BODY_TEXT_SEPARATOR ||
            text[at - 1] == IMAP_SEARCH_BODY_TEXT_SEPARATOR ||
            text[at + 1] == IMAP_SEARCH_BODY_TEXT_SEPARATOR) {
            continue;
        }
        size_t a = body_char_start(text, at - 1);
        size_t b = at + 1;
        size_t e = b + 1;
        while (e < text_len && ((unsigned char)text[e] & 0xc0) == 0x80) {
            e++;
        }
        size_t n = (at - a) + (e - b);
        memcpy(needle, text + a, at - a);
        memcpy(needle + (at - a), text + b, e - b);
        body_compare(name, data, len, text, body_len, text_len, needle, n, tally);
    }
    /* Bounded: every buffer short of the text says so, the exact one fits. */
    size_t sizes[] = { 0, 1, text_len > 0 ? text_len - 1 : 0, text_len };
    for (size_t i = 0; i < 4; i++) {
        size_t bl;
        size_t tl;
        rc = imap_search_body_text(data, len, body_parts, IMAP_MIME_PARTS_MAX, body_text_buf,
                                   sizes[i], &bl, &tl);
        if (sizes[i] < text_len) {
            CHECK(rc == -ENOBUFS);
        } else {
            CHECK(rc == 0 && tl == text_len && bl == body_len);
            CHECK(memcmp(body_text_buf, text, text_len) == 0);
        }
    }
    free(text);
}

static void
test_body_text(void)
{
    struct body_tally tally = { 0 };
    static char fixture[FIXTURE_BYTES_MAX];
    for (size_t i = 0; i < sizeof(body_fixture_names) / sizeof(body_fixture_names[0]); i++) {
        char path[256];
        snprintf(path, sizeof(path), "mime/%s.eml", body_fixture_names[i]);
        size_t len = FIXTURE_READ(path, fixture);
        char *msg = malloc(len > 0 ? len : 1);
        memcpy(msg, fixture, len);
        body_check_message(body_fixture_names[i], msg, len, &tally);
        free(msg);
    }
    static const struct {
        const char *name;
        const char *data;
    } inline_msgs[] = {
        { "nested", body_msg_nested }, { "tail", body_msg_tail }, { "plain", msg_plain },
        { "base64", msg_base64 },      { "qp", msg_qp },          { "multi", msg_multi },
        { "nested2", msg_nested },     { "nodate", msg_nodate },
    };
    for (size_t i = 0; i < sizeof(inline_msgs) / sizeof(inline_msgs[0]); i++) {
        body_check_message(inline_msgs[i].name, inline_msgs[i].data,
                           strlen(inline_msgs[i].data), &tally);
    }

    /* The layout, spelled out for the nested message: its text leaves in
     * order (two of them end inside a character: U+FFFD; the line break
     * before a boundary belongs to the boundary), then the attached
     * message's header. */
    size_t body_len;
    size_t text_len;
    CHECK(imap_search_body_text(body_msg_nested, strlen(body_msg_nested), body_parts,
                                IMAP_MIME_PARTS_MAX, body_text_buf, sizeof(body_text_buf),
                                &body_len, &text_len) == 0);
    static const char want_body[] =
        "grüße aus köln äö endq\xff"
        "wstart grüße äö \xef\xbf\xbd\xff"
        "unknown ä \xef\xbf\xbd\xef\xbf\xbd bytes\xff"
        "ends inside \xef\xbf\xbd\xff"
        "\xe2\x82\xac euro, äö caps\xff"
        "grüße";
    CHECK_BYTES(body_text_buf, body_len, want_body, sizeof(want_body) - 1);
    static const char want_tail[] =
        "\xff"
        "from: inner@example.org\r\n"
        "subject: ärger über inner\r\n"
        "content-type: multipart/mixed; boundary=\"n\"\r\n";
    CHECK_BYTES(body_text_buf + body_len, text_len - body_len, want_tail,
                sizeof(want_tail) - 1);
    /* ...and the needle across two parts is not found by either path. */
    struct imap_search s;
    struct imap_search_context ctx = {
        .messages = 1, .uid_max = 1, .parts = body_parts, .parts_cap = IMAP_MIME_PARTS_MAX,
    };
    struct imap_message m = { .seq = 1, .uid = 1, .data = body_msg_nested,
                              .data_len = strlen(body_msg_nested) };
    CHECK(compile("a SEARCH BODY qw\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_match(&s, &m, &ctx));
    CHECK(compile("a SEARCH BODY endq\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_match(&s, &m, &ctx));

    /* A long UTF-8 text, base64, every chunk seam inside a character. */
    static char big[200000];
    static char raw[30000];
    size_t raw_len = 0;
    while (raw_len + 4 + 7 <= sizeof(raw)) {
        bool is_a = raw_len % 7 == 0;
        memcpy(raw + raw_len, is_a ? "\xc3\x84" : "x\xe2\x82\xac", is_a ? 2 : 4);
        raw_len += is_a ? 2 : 4;
    }
    memcpy(raw + raw_len, "Zende\xf0\x9f", 7);
    raw_len += 7;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int enc = 0; enc < 2; enc++) {
        size_t len = (size_t)snprintf(big, sizeof(big),
                                      "Content-Type: text/plain; charset=utf-8\r\n"
                                      "Content-Transfer-Encoding: %s\r\n\r\n",
                                      enc == 0 ? "8bit" : "base64");
        if (enc == 0) {
            memcpy(big + len, raw, raw_len);
            len += raw_len;
        } else {
            for (size_t i = 0; i < raw_len; i += 3) {
                unsigned char a = (unsigned char)raw[i];
                unsigned char b = i + 1 < raw_len ? (unsigned char)raw[i + 1] : 0;
                unsigned char c = i + 2 < raw_len ? (unsigned char)raw[i + 2] : 0;
                big[len++] = b64[a >> 2];
                big[len++] = b64[((a & 3) << 4) | (b >> 4)];
                big[len++] = i + 1 < raw_len ? b64[((b & 15) << 2) | (c >> 6)] : '=';
                big[len++] = i + 2 < raw_len ? b64[c & 63] : '=';
                if (i % 57 == 54) {
                    big[len++] = '\r';
                    big[len++] = '\n';
                }
            }
        }
        memcpy(big + len, "\r\n", 2);
        len += 2;
        body_check_message(enc == 0 ? "long 8bit" : "long base64", big, len, &tally);
        /* Over a small buffer: too large, as the cache bound needs. */
        CHECK(imap_search_body_text(big, len, body_parts, IMAP_MIME_PARTS_MAX, body_text_buf,
                                    4096, &body_len, &text_len) == -ENOBUFS);
    }
    /* The comparisons mean something: many, and both answers seen. */
    CHECK(tally.compared > 2000);
    CHECK(tally.matched > tally.compared / 4);
    CHECK(tally.matched < tally.compared);
}

/* Formatting. */

struct format_case {
    const char     *cmd;
    unsigned        flags;
    uint32_t        numbers[8];
    size_t          count;
    uint64_t        modseq;
    const char     *want;
};

static const struct format_case format_cases[] = {
    { "a1 SEARCH ALL", 0, { 2, 3, 5 }, 3, 0, "* SEARCH 2 3 5\r\n" },
    { "a1 SEARCH ALL", 0, { 0 }, 0, 0, "* SEARCH\r\n" },
    { "a1 UID SEARCH ALL", 0, { 4294967295u }, 1, 0, "* SEARCH 4294967295\r\n" },
    { "a1 SEARCH MODSEQ 5", 0, { 2, 3, 5 }, 3, 917, "* SEARCH 2 3 5 (MODSEQ 917)\r\n" },
    { "a1 SEARCH MODSEQ 5", 0, { 0 }, 0, 917, "* SEARCH\r\n" },
    { "a1 UID SEARCH RETURN (MIN MAX COUNT ALL) ALL", 0, { 2, 3, 5 }, 3, 0,
      "* ESEARCH (TAG \"a1\") UID MIN 2 MAX 5 COUNT 3 ALL 2:3,5\r\n" },
    { "a1 UID SEARCH RETURN (MIN MAX COUNT ALL) ALL", 0, { 0 }, 0, 0,
      "* ESEARCH (TAG \"a1\") UID COUNT 0\r\n" },
    { "a1 UID SEARCH RETURN () ALL", 0, { 0 }, 0, 0, "* ESEARCH (TAG \"a1\") UID\r\n" },
    { "a1 SEARCH RETURN () ALL", 0, { 1, 2, 3, 4, 7, 9, 10, 12 }, 8, 0,
      "* ESEARCH (TAG \"a1\") ALL 1:4,7,9:10,12\r\n" },
    { "a1 SEARCH RETURN (MIN) ALL", 0, { 7, 9 }, 2, 0, "* ESEARCH (TAG \"a1\") MIN 7\r\n" },
    { "a1 SEARCH RETURN (MAX) ALL", 0, { 7 }, 1, 0, "* ESEARCH (TAG \"a1\") MAX 7\r\n" },
    { "a1 SEARCH RETURN (COUNT) ALL", 0, { 7, 9 }, 2, 0, "* ESEARCH (TAG \"a1\") COUNT 2\r\n" },
    { "a1 SEARCH RETURN (ALL) MODSEQ 1", 0, { 1, 2, 3, 5 }, 4, 1236,
      "* ESEARCH (TAG \"a1\") ALL 1:3,5 MODSEQ 1236\r\n" },
    { "a1 SEARCH RETURN (COUNT) MODSEQ 1", 0, { 0 }, 0, 1236,
      "* ESEARCH (TAG \"a1\") COUNT 0\r\n" },
    { "x.y SEARCH SEEN", IMAP_SEARCH_F_REV2, { 1, 2, 3 }, 3, 0,
      "* ESEARCH (TAG \"x.y\") ALL 1:3\r\n" },
    { "x SEARCH SEEN", IMAP_SEARCH_F_REV2, { 0 }, 0, 0, "* ESEARCH (TAG \"x\")\r\n" },
    { "x UID SEARCH MODSEQ 2", IMAP_SEARCH_F_REV2, { 8 }, 1, 9,
      "* ESEARCH (TAG \"x\") UID ALL 8 MODSEQ 9\r\n" },
};

static void
test_format(void)
{
    char cmd[256];
    char buf[512];
    for (size_t i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        const struct format_case *c = &format_cases[i];
        snprintf(cmd, sizeof(cmd), "%s\r\n", c->cmd);
        struct imap_search s;
        CHECK(compile(cmd, c->flags, &s) == IMAP_SEARCH_OK);
        struct span tag = span_make(cmd, (size_t)(strchr(cmd, ' ') - cmd));
        struct imap_out out;
        imap_out_init(&out, buf, sizeof(buf));
        CHECK(imap_search_format(&s, tag, c->numbers, c->count, c->modseq, &out) == 0);
        CHECK_BYTES(buf, out.len, c->want, strlen(c->want));
        /* Every shorter buffer overflows and reports it. */
        for (size_t cap = 0; cap < strlen(c->want); cap += 3) {
            imap_out_init(&out, buf, cap);
            CHECK(imap_search_format(&s, tag, c->numbers, c->count, c->modseq, &out) ==
                  -ENOBUFS);
            CHECK(out.len <= cap);
        }
        imap_out_init(&out, buf, strlen(c->want));
        CHECK(imap_search_format(&s, tag, c->numbers, c->count, c->modseq, &out) == 0);
    }

    struct imap_search s;
    CHECK(compile("a SEARCH RETURN (MIN MAX) MODSEQ 1\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(imap_search_modseq_of_ends(&s));
    CHECK(compile("a SEARCH RETURN (MIN COUNT) MODSEQ 1\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_modseq_of_ends(&s));
    CHECK(compile("a SEARCH RETURN (MIN) SEEN\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_modseq_of_ends(&s));
    CHECK(compile("a SEARCH MODSEQ 1\r\n", 0, &s) == IMAP_SEARCH_OK);
    CHECK(!imap_search_modseq_of_ends(&s));

    /* 1,000,000 numbers: every other one (no runs), then one run. */
    const size_t n = 1000000;
    uint32_t *numbers = malloc(n * sizeof(*numbers));
    size_t cap = 16 * n;
    char *big = malloc(cap);
    CHECK(numbers != NULL && big != NULL);
    if (numbers == NULL || big == NULL) {
        free(numbers);
        free(big);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        numbers[i] = (uint32_t)(2 * i + 1);
    }
    struct imap_out out;
    CHECK(compile("t SEARCH RETURN (ALL COUNT) ALL\r\n", 0, &s) == IMAP_SEARCH_OK);
    imap_out_init(&out, big, cap);
    CHECK(imap_search_format(&s, SPAN_LITERAL("t"), numbers, n, 0, &out) == 0);
    CHECK(out.len > 6 * n);
    CHECK(memcmp(big, "* ESEARCH (TAG \"t\") COUNT 1000000 ALL 1,3,5,", 44) == 0);
    CHECK(memcmp(big + out.len - 10, ",1999999\r\n", 10) == 0);
    CHECK(compile("t SEARCH ALL\r\n", 0, &s) == IMAP_SEARCH_OK);
    imap_out_init(&out, big, cap);
    CHECK(imap_search_format(&s, SPAN_LITERAL("t"), numbers, n, 0, &out) == 0);
    CHECK(memcmp(big + out.len - 10, " 1999999\r\n", 10) == 0);
    for (size_t i = 0; i < n; i++) {
        numbers[i] = (uint32_t)(i + 1);
    }
    CHECK(compile("t SEARCH RETURN (ALL) ALL\r\n", 0, &s) == IMAP_SEARCH_OK);
    imap_out_init(&out, big, cap);
    CHECK(imap_search_format(&s, SPAN_LITERAL("t"), numbers, n, 0, &out) == 0);
    CHECK_BYTES(big, out.len, "* ESEARCH (TAG \"t\") ALL 1:1000000\r\n", 35);
    free(numbers);
    free(big);
}

int
main(void)
{
    test_decode_header();
    test_charsets();
    test_fold();
    test_finder();
    test_finder_end();
    test_parse_table();
    test_parse_limits();
    test_match();
    test_sent_dates();
    test_long_bodies();
    test_body_text();
    test_format();
    UNIT_DONE();
}
