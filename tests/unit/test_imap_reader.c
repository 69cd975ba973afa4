/*
 * tests/unit/test_imap_reader.c - imap_reader framing.
 *
 * Each case is a client transcript and the expected event log (commands
 * with their literals, continuations, streamed literal data, refusals).
 * Every transcript is fed whole, one byte at a time, and in every chunk size
 * from 2 to 19, and each way must give the same log: that covers CRLF split
 * across feeds and literal boundaries at chunk ends. The command buffer is
 * an exact-size heap block, so ASan reports any write past it. Limits are
 * tested at max - 1, max and max + 1.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_reader.h"
#include "tests/unit/unit.h"

#define L(s) (s), (sizeof(s) - 1)

#define LOG_BYTES (1u << 20)

struct run {
    char  *log;
    size_t log_len;
    char  *stream;
    size_t stream_len;
    bool   is_fatal;
};

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static void
log_put(struct run *run, const char *p, size_t n)
{
    if (run->log_len + n > LOG_BYTES) {
        n = LOG_BYTES - run->log_len;
    }
    memcpy(run->log + run->log_len, p, n);
    run->log_len += n;
}

static void
log_str(struct run *run, const char *s)
{
    log_put(run, s, strlen(s));
}

static void
log_escaped(struct run *run, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c >= 0x7f) {
            char hex[8];
            snprintf(hex, sizeof(hex), "\\x%02x", c);
            log_str(run, hex);
        } else {
            log_put(run, (const char *)&c, 1);
        }
    }
}

static void
log_tag(struct run *run, const struct imap_reader *reader)
{
    struct span tag = imap_reader_tag(reader);
    log_str(run, "(");
    log_escaped(run, tag.ptr, tag.len);
    log_str(run, ")");
}

/* Feed in chunks of chunk bytes (0: all at once); refuse_at: refuse the
 * n-th continuation request (1-based; 0: never). */
static void
run_feed(const struct imap_reader_config *config, size_t buf_bytes, const char *in, size_t len,
         size_t chunk, unsigned refuse_at, struct run *run)
{
    char *buf = malloc(buf_bytes);
    if (buf == NULL) {
        abort();
    }
    struct imap_reader reader;
    imap_reader_init(&reader, config, buf, buf_bytes, reader_literals);
    run->log_len = 0;
    run->stream_len = 0;
    run->is_fatal = false;
    unsigned continues = 0;

    size_t pos = 0;
    while (pos < len && !run->is_fatal) {
        size_t end = chunk == 0 || len - pos < chunk ? len : pos + chunk;
        while (pos < end) {
            size_t used = 0;
            enum imap_reader_event ev = imap_reader_feed(&reader, in + pos, end - pos, &used);
            CHECK(used <= end - pos);
            pos += used;
            if (ev == IMAP_READER_NEED_MORE) {
                CHECK(pos == end);
                if (pos != end) {
                    pos = len; /* avoid spinning on a bug */
                    break;
                }
                continue;
            }
            switch (ev) {
            case IMAP_READER_CONTINUE:
                continues++;
                if (continues == refuse_at) {
                    log_str(run, "REFUSE");
                    log_tag(run, &reader);
                    log_str(run, " ");
                    imap_reader_refuse_literal(&reader);
                } else {
                    log_str(run, "+ ");
                }
                break;
            case IMAP_READER_LITERAL_DATA: {
                const struct imap_reader_chunk *c = imap_reader_chunk(&reader);
                CHECK(c->data.len > 0);
                CHECK(c->offset + c->data.len <= c->total);
                CHECK(c->is_last == (c->offset + c->data.len == c->total));
                memcpy(run->stream + run->stream_len, c->data.ptr, c->data.len);
                run->stream_len += c->data.len;
                if (c->is_last) {
                    log_str(run, "STREAM[");
                    log_escaped(run, run->stream, run->stream_len);
                    log_str(run, "] ");
                    run->stream_len = 0;
                }
                break;
            }
            case IMAP_READER_COMMAND: {
                struct imap_command_text cmd = imap_reader_command(&reader);
                log_str(run, "CMD[");
                log_escaped(run, cmd.text, cmd.len);
                log_str(run, "]");
                for (size_t i = 0; i < cmd.literal_count; i++) {
                    const struct imap_literal *lit = &cmd.literals[i];
                    char desc[96];
                    snprintf(desc, sizeof(desc), "<%zu:%zu:%llu%s%s%s>", lit->announce_offset,
                             lit->data_offset, (unsigned long long)lit->len,
                             lit->is_sync ? "" : "+", lit->is_binary ? "~" : "",
                             lit->is_streamed ? "S" : "");
                    log_str(run, desc);
                    CHECK(lit->data_offset <= cmd.len);
                    if (!lit->is_streamed) {
                        CHECK(lit->len <= cmd.len - lit->data_offset);
                    }
                }
                if (cmd.has_bare_lf) {
                    log_str(run, " LF");
                }
                if (cmd.is_append) {
                    log_str(run, " APPEND");
                }
                log_str(run, " ");
                break;
            }
            case IMAP_READER_TOO_BIG:
                log_str(run, "TOOBIG");
                log_tag(run, &reader);
                log_str(run, " ");
                break;
            case IMAP_READER_ERROR:
                log_str(run, "ERROR");
                log_tag(run, &reader);
                log_str(run, ":");
                log_str(run, imap_reader_error_name(imap_reader_error(&reader)));
                log_str(run, " ");
                break;
            case IMAP_READER_FATAL:
                log_str(run, "FATAL:");
                log_str(run, imap_reader_error_name(imap_reader_error(&reader)));
                log_str(run, " ");
                run->is_fatal = true;
                size_t again = 1;
                CHECK(imap_reader_feed(&reader, "x", 1, &again) == IMAP_READER_FATAL);
                CHECK(again == 0);
                break;
            case IMAP_READER_NEED_MORE:
                break;
            }
            if (run->is_fatal) {
                break;
            }
        }
    }
    if (!run->is_fatal && imap_reader_is_mid_command(&reader)) {
        log_str(run, "PARTIAL");
    }
    free(buf);
}

static struct run run_whole;
static struct run run_other;

static void
run_init(struct run *run)
{
    run->log = malloc(LOG_BYTES);
    run->stream = malloc(LOG_BYTES * 4);
    if (run->log == NULL || run->stream == NULL) {
        abort();
    }
}

/* Feed every way; all logs must equal want. */
static void
check_case(const char *file, int line, const struct imap_reader_config *config,
           size_t buf_bytes, const char *in, size_t len, unsigned refuse_at, const char *want)
{
    run_feed(config, buf_bytes, in, len, 0, refuse_at, &run_whole);
    unit_check_bytes(file, line, run_whole.log, run_whole.log_len, want, strlen(want));
    static const size_t chunks[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 16, 17, 19, 64, 4096 };
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        run_feed(config, buf_bytes, in, len, chunks[i], refuse_at, &run_other);
        if (run_other.log_len != run_whole.log_len ||
            memcmp(run_other.log, run_whole.log, run_whole.log_len) != 0) {
            fprintf(stderr, "chunk size %zu:\n", chunks[i]);
        }
        unit_check_bytes(file, line, run_other.log, run_other.log_len, run_whole.log,
                         run_whole.log_len);
    }
}

#define CASE(config, in, want) \
    check_case(__FILE__, __LINE__, (config), 1u << 17, in, sizeof(in) - 1, 0, (want))

static struct imap_reader_config
config_default(void)
{
    struct imap_reader_config config;
    imap_reader_config_default(&config, 50u * 1024 * 1024);
    return config;
}

static void
test_basic(void)
{
    struct imap_reader_config c = config_default();
    CASE(&c, "a1 NOOP\r\n", "CMD[a1 NOOP] ");
    CASE(&c, "a1 NOOP\r\na2 CAPABILITY\r\n", "CMD[a1 NOOP] CMD[a2 CAPABILITY] ");
    CASE(&c, "a1 NOOP\n", "CMD[a1 NOOP] LF ");
    CASE(&c, "a1 NOOP\r\na2 NOOP\na3 NOOP\r\n", "CMD[a1 NOOP] CMD[a2 NOOP] LF CMD[a3 NOOP] ");
    CASE(&c, "\r\n", "CMD[] ");
    CASE(&c, "a1 NOOP", "PARTIAL");
    CASE(&c, "a1 NOOP\r", "PARTIAL");
    CASE(&c, "a1 NO\rOP\r\na2 NOOP\r\n", "ERROR(a1):bare CR CMD[a2 NOOP] ");
    CASE(&c, "a1 NO\0OP\r\na2 NOOP\r\n", "ERROR(a1):NUL byte CMD[a2 NOOP] ");
    CASE(&c, "a1 NOOP\r\r\n", "ERROR(a1):bare CR ");
    /* "{3}" that does not end the line is plain text for the parser. */
    CASE(&c, "a1 X {3} y\r\n", "CMD[a1 X {3} y] ");
    CASE(&c, "a1 X {}\r\n", "CMD[a1 X {}] ");
    CASE(&c, "a1 X {+}\r\n", "CMD[a1 X {+}] ");
    CASE(&c, "a1 X {-1}\r\n", "CMD[a1 X {-1}] ");
    CASE(&c, "a1 X 3}\r\n", "CMD[a1 X 3}] ");
}

static void
test_literals(void)
{
    struct imap_reader_config c = config_default();
    CASE(&c, "a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n",
         "+ + CMD[a1 LOGIN {5}alice {6}secret]<9:12:5><18:21:6> ");
    CASE(&c, "a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n",
         "CMD[a1 LOGIN {5+}alice {6+}secret]<9:13:5+><19:23:6+> ");
    CASE(&c, "a1 LOGIN {5}\nalice {6}\nsecret\n",
         "+ + CMD[a1 LOGIN {5}alice {6}secret]<9:12:5><18:21:6> LF ");
    CASE(&c, "a1 X {0}\r\n\r\n", "+ CMD[a1 X {0}]<5:8:0> ");
    CASE(&c, "a1 X {0+}\r\n {0+}\r\n\r\n", "CMD[a1 X {0+} {0+}]<5:9:0+><10:14:0+> ");
    /* Literal data holds anything, CR LF and NUL included. */
    CASE(&c, "a1 X {4+}\r\n\r\n\0\n\r\n",
         "CMD[a1 X {4+}\\x0d\\x0a\\x00\\x0a]<5:9:4+> ");
    CASE(&c, "a1 X ~{3}\r\nab\0\r\n", "+ CMD[a1 X ~{3}ab\\x00]<5:9:3~> ");
    CASE(&c, "a1 X ~{3+}\r\nabc)\r\n", "CMD[a1 X ~{3+}abc)]<5:10:3+~> ");
    CASE(&c, "a1 SEARCH CHARSET UTF-8 TEXT {4}\r\n\xd1\x82\xd0\xb5\r\n",
         "+ CMD[a1 SEARCH CHARSET UTF-8 TEXT {4}\\xd1\\x82\\xd0\\xb5]<29:32:4> ");
    /* Digits: leading zeros are fine. */
    CASE(&c, "a1 X {0003+}\r\nabc\r\n", "CMD[a1 X {0003+}abc]<5:12:3+> ");
    /* A literal announced in a literal's data is data. */
    CASE(&c, "a1 X {4+}\r\n{9}\r\r\n", "CMD[a1 X {4+}{9}\\x0d]<5:9:4+> ");
}

static void
test_append(void)
{
    struct imap_reader_config c = config_default();
    c.inline_bytes_max = 16;
    c.append_bytes_max = 310;
    char msg[1024];
    int n = snprintf(msg, sizeof(msg),
                     "A003 APPEND INBOX (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {310}\r\n"
                     "%0310d\r\nA004 NOOP\r\n", 0);
    CHECK(n > 0);
    char want[2048];
    snprintf(want, sizeof(want),
             "+ STREAM[%0310d] CMD[A003 APPEND INBOX (\\Seen) \"7-Feb-1994 21:52:25 -0800\" "
             "{310}]<54:59:310S> APPEND CMD[A004 NOOP] ",
             0);
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0, want);

    /* One byte over the APPEND limit: refused before the data. */
    n = snprintf(msg, sizeof(msg), "A003 APPEND INBOX {311}\r\nA004 NOOP\r\n");
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0,
               "TOOBIG(A003) CMD[A004 NOOP] ");
    /* Small APPEND literals (the mailbox name) stay inline. */
    n = snprintf(msg, sizeof(msg), "A1 append {5+}\r\nINBOX {3+}\r\nabc\r\n");
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0,
               "CMD[A1 append {5+}INBOX {3+}abc]<10:14:5+><20:24:3+> APPEND ");
    /* MULTIAPPEND, literal8, non-sync: two streamed messages. */
    n = snprintf(msg, sizeof(msg),
                 "A1 APPEND Sent ~{20+}\r\n%020d {17}\r\n%017d\r\n", 1, 2);
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0,
               "STREAM[00000000000000000001] + STREAM[00000000000000002] "
               "CMD[A1 APPEND Sent ~{20+} {17}]<15:21:20+~S><22:26:17S> APPEND ");
    /* UID does not make a command APPEND, nor does APPEND as an argument. */
    n = snprintf(msg, sizeof(msg), "A1 UID APPEND {20}\r\n");
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0,
               "+ PARTIAL");
    n = snprintf(msg, sizeof(msg), "A1 LOGIN APPEND {70000}\r\n");
    check_case(__FILE__, __LINE__, &c, 1u << 17, msg, (size_t)n, 0, "TOOBIG(A1) ");
    /* A buffer too small for a literal streams it for APPEND. */
    c.inline_bytes_max = 64;
    n = snprintf(msg, sizeof(msg), "A1 APPEND X {60+}\r\n%060d\r\n", 7);
    check_case(__FILE__, __LINE__, &c, 64, msg, (size_t)n, 0,
               "STREAM[000000000000000000000000000000000000000000000000000000000007] "
               "CMD[A1 APPEND X {60+}]<12:17:60+S> APPEND ");
}

static void
test_refusals(void)
{
    struct imap_reader_config c = config_default();
    c.literal_bytes_max = 10;
    c.line_bytes_max = 40;
    c.literal_count_max = 2;
    c.discard_bytes_max = 100;
    /* Sync literal over the limit: refused before the data; the client
     * does not send it. */
    CASE(&c, "a1 LOGIN {11}\r\na2 NOOP\r\n", "TOOBIG(a1) CMD[a2 NOOP] ");
    CASE(&c, "a1 LOGIN {10}\r\n0123456789\r\n", "+ CMD[a1 LOGIN {10}0123456789]<9:13:10> ");
    CASE(&c, "a1 LOGIN {99999999999999999999999}\r\na2 NOOP\r\n",
         "TOOBIG(a1) CMD[a2 NOOP] ");
    /* Non-sync over the limit: skipped with the rest of the command. */
    CASE(&c, "a1 LOGIN {11+}\r\n0123456789a x\r\na2 NOOP\r\n",
         "ERROR(a1):literal too big CMD[a2 NOOP] ");
    CASE(&c, "a1 LOGIN {11+}\r\n01234\r\n789a {3+}\r\n\r\n\r\r\na2 NOOP\r\n",
         "ERROR(a1):literal too big CMD[a2 NOOP] ");
    /* ... but a sync literal in a refused command ends it at once. */
    CASE(&c, "a1 LOGIN {11+}\r\n0123456789a {3}\r\na2 NOOP\r\n",
         "ERROR(a1):literal too big CMD[a2 NOOP] ");
    /* Past the discard ceiling: fatal. */
    CASE(&c, "a1 LOGIN {101+}\r\n", "FATAL:refused command too big to skip ");
    CASE(&c, "a1 LOGIN {99999999999999999999999+}\r\n",
         "FATAL:refused command too big to skip ");
    CASE(&c, "a1 LOGIN {100+}\r\n", "PARTIAL");
    /* Too many literals. */
    CASE(&c, "a1 X {1+}\r\na {1+}\r\nb\r\n", "CMD[a1 X {1+}a {1+}b]<5:9:1+><11:15:1+> ");
    CASE(&c, "a1 X {1+}\r\na {1+}\r\nb {1+}\r\nc\r\na2 NOOP\r\n",
         "ERROR(a1):too many literals CMD[a2 NOOP] ");
    CASE(&c, "a1 X {1}\r\na {1}\r\nb {1}\r\na2 NOOP\r\n",
         "+ + ERROR(a1):too many literals CMD[a2 NOOP] ");
    /* Refusing a continuation. */
    check_case(__FILE__, __LINE__, &c, 1u << 17, L("a1 X {1}\r\na2 NOOP\r\n"), 1,
               "REFUSE(a1) CMD[a2 NOOP] ");
    check_case(__FILE__, __LINE__, &c, 1u << 17, L("a1 X {1}\r\nb {1}\r\na2 NOOP\r\n"), 2,
               "+ REFUSE(a1) CMD[a2 NOOP] ");
    /* Fuzz: refusing "{0}" (nothing left to read) used to assert. */
    check_case(__FILE__, __LINE__, &c, 1u << 17, L("a1 X {0}\r\na2 NOOP\r\n"), 1,
               "REFUSE(a1) CMD[a2 NOOP] ");
    /* Fuzz: "{3+}" CR CR LF gave different results whole and split,
     * because a CR held back between feeds was lost from the discard
     * tail. It is not an announcement: the line ends at the CR LF. */
    CASE(&c, "a1 X {3+}\r\r\nabc\r\na2 NOOP\r\n",
         "ERROR(a1):bare CR CMD[abc] CMD[a2 NOOP] ");
    CASE(&c, "a1 X\r{3+}\r\nab\r\na2 NOOP\r\n", "ERROR(a1):bare CR CMD[a2 NOOP] ");

    /* LITERAL-: non-sync literals above 4096 are refused. */
    struct imap_reader_config m = config_default();
    m.nonsync_bytes_max = IMAP_LITERAL_MINUS_BYTES_MAX;
    m.literal_bytes_max = 8192;
    static char big[8192 + 64];
    int n = snprintf(big, sizeof(big), "a1 X {4096+}\r\n%04096d\r\n", 0);
    char want[8192 + 64];
    snprintf(want, sizeof(want), "CMD[a1 X {4096+}%04096d]<5:12:4096+> ", 0);
    check_case(__FILE__, __LINE__, &m, 1u << 17, big, (size_t)n, 0, want);
    n = snprintf(big, sizeof(big), "a1 X {4097+}\r\n%04097d\r\na2 NOOP\r\n", 0);
    check_case(__FILE__, __LINE__, &m, 1u << 17, big, (size_t)n, 0,
               "ERROR(a1):literal too big CMD[a2 NOOP] ");
    n = snprintf(big, sizeof(big), "a1 X {4097}\r\n%04097d\r\n", 0);
    snprintf(want, sizeof(want), "+ CMD[a1 X {4097}%04097d]<5:11:4097> ", 0);
    check_case(__FILE__, __LINE__, &m, 1u << 17, big, (size_t)n, 0, want);
}

static void
test_line_limits(void)
{
    struct imap_reader_config c = config_default();
    c.line_bytes_max = 20;
    c.discard_bytes_max = 1000;
    /* 19, 20, 21 bytes of text. */
    CASE(&c, "a1 X 0123456789abcd\r\n", "CMD[a1 X 0123456789abcd] ");
    CASE(&c, "a1 X 0123456789abcde\r\n", "CMD[a1 X 0123456789abcde] ");
    CASE(&c, "a1 X 0123456789abcdef\r\na2 NOOP\r\n",
         "ERROR(a1):line too long CMD[a2 NOOP] ");
    /* Text over several lines counts together; literal data does not. */
    CASE(&c, "a1 X {3+}\r\nabc 0123456789\r\n", "CMD[a1 X {3+}abc 0123456789]<5:9:3+> ");
    CASE(&c, "a1 X {3+}\r\nabc 0123456789a\r\na2 NOOP\r\n",
         "ERROR(a1):line too long CMD[a2 NOOP] ");
    /* A literal announced in the skipped part of a long line is skipped
     * with its data, so its CR LF does not end the command. */
    CASE(&c, "a1 X 0123456789abcdefghij {5+}\r\nab\r\nc\r\na2 NOOP\r\n",
         "ERROR(a1):line too long CMD[a2 NOOP] ");
    /* An endless line: fatal at the discard ceiling. */
    static char endless[2000];
    memset(endless, 'x', sizeof(endless));
    memcpy(endless, "a1 X ", 5);
    check_case(__FILE__, __LINE__, &c, 1u << 17, endless, sizeof(endless), 0,
               "FATAL:refused command too big to skip ");
    /* A buffer smaller than the line limit bounds the line too. */
    c.line_bytes_max = 1000;
    c.inline_bytes_max = 16;
    check_case(__FILE__, __LINE__, &c, 16, L("a1 X 0123456789a\r\n"), 0,
               "CMD[a1 X 0123456789a] ");
    check_case(__FILE__, __LINE__, &c, 16, L("a1 X 0123456789ab\r\na2 NOOP\r\n"), 0,
               "ERROR(a1):line too long CMD[a2 NOOP] ");
    /* A literal that does not fit the buffer is too big (non-APPEND). */
    check_case(__FILE__, __LINE__, &c, 16, L("a1 X {9}\r\na2 NOOP\r\n"), 0,
               "TOOBIG(a1) CMD[a2 NOOP] ");
    check_case(__FILE__, __LINE__, &c, 16, L("a1 X {8}\r\n01234567\r\n"), 0,
               "+ CMD[a1 X {8}01234567]<5:8:8> ");
}

static void
test_tag(void)
{
    struct imap_reader_config c = config_default();
    c.literal_bytes_max = 1;
    CASE(&c, "+x LOGIN {2}\r\n", "TOOBIG() ");
    CASE(&c, "a.1 LOGIN {2}\r\n", "TOOBIG(a.1) ");
    CASE(&c, "a(1 LOGIN {2}\r\n", "TOOBIG() ");
    CASE(&c, " LOGIN {2}\r\n", "TOOBIG() ");
}

static void
test_clients(void)
{
    struct imap_reader_config c = config_default();
    CASE(&c, "1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n",
         "CMD[1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)] ");
    CASE(&c, "a0001 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
         "CMD[a0001 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))] ");
    CASE(&c, "a2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
         "CMD[a2 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==] ");
    CASE(&c, "a2 AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
         "CMD[a2 AUTHENTICATE PLAIN] CMD[AGFsaWNlAHNlY3JldA==] ");
}

int
main(void)
{
    run_init(&run_whole);
    run_init(&run_other);
    test_basic();
    test_literals();
    test_append();
    test_refusals();
    test_line_limits();
    test_tag();
    test_clients();
    UNIT_DONE();
}
