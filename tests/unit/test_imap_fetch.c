/*
 * tests/unit/test_imap_fetch.c - FETCH item parsing, FETCH responses and
 * the base64 / quoted-printable decoders behind BINARY.
 *
 * Commands go through imap_reader and imap_parser as in the daemon, then
 * imap_fetch_parse(); tables cover valid and invalid item lists and the
 * limits (sections, header names, part depth) at max and max + 1.
 * Responses are written for inline messages and the MIME fixtures into a
 * sink that records write() bytes and write_range() ranges separately, and
 * are compared byte for byte (ranges are checked against the message).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_fetch.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_reader.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

#define SINK_BYTES (256 * 1024)
#define RANGES_MAX 64

/* --- command parsing helpers -------------------------------------------- */

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static char reader_buf[1 << 17];
static struct imap_node nodes[IMAP_PARSER_NODES_DEFAULT];
static struct imap_reader reader;
static struct imap_parsed parsed;

/* Frame and parse "a FETCH 1 <items>\r\n" (or UID FETCH); returns the
 * parse result of imap_fetch_parse, or -1 when the generic parser failed. */
static int
parse_fetch(const char *items, unsigned flags, struct imap_fetch_request *req,
            const char **text_out)
{
    static char line[1 << 16];
    int n = snprintf(line, sizeof(line), "a %sFETCH 1%s%s\r\n",
                     (flags & IMAP_FETCH_PARSE_F_UID) ? "UID " : "", items[0] ? " " : "", items);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        return -2;
    }
    struct imap_reader_config config;
    imap_reader_config_default(&config, 1 << 20);
    imap_reader_init(&reader, &config, reader_buf, sizeof(reader_buf), reader_literals);
    size_t pos = 0;
    bool have = false;
    size_t len = (size_t)n;
    while (pos < len) {
        size_t used;
        enum imap_reader_event ev = imap_reader_feed(&reader, line + pos, len - pos, &used);
        pos += used;
        if (ev == IMAP_READER_COMMAND) {
            have = true;
            break;
        }
        if (ev != IMAP_READER_NEED_MORE && ev != IMAP_READER_CONTINUE) {
            break;
        }
    }
    if (!have) {
        return -3;
    }
    struct imap_command_text cmd = imap_reader_command(&reader);
    if (imap_parser_parse(&cmd, 0, nodes, IMAP_PARSER_NODES_DEFAULT, &parsed) != IMAP_PARSE_OK) {
        return -1;
    }
    uint32_t seq = imap_node_first_child(&parsed, 0);
    uint32_t first = seq == IMAP_NODE_NONE ? IMAP_NODE_NONE : imap_node_next(&parsed, seq);
    return (int)imap_fetch_parse(&parsed, first, flags, req, text_out);
}

/* --- sink ------------------------------------------------------------------ */

struct range {
    uint64_t offset;
    uint64_t len;
};

struct test_sink {
    const char  *msg;
    size_t       msg_len;
    char         buf[SINK_BYTES];
    size_t       len;
    size_t       write_calls;
    size_t       range_count;
    struct range ranges[RANGES_MAX];
    bool         is_range_bad;
};

static struct test_sink ts;

static void
sink_write(void *ctx, const char *bytes, size_t len)
{
    struct test_sink *s = ctx;
    s->write_calls++;
    if (len > SINK_BYTES - s->len) {
        s->is_range_bad = true;
        return;
    }
    memcpy(s->buf + s->len, bytes, len);
    s->len += len;
}

static void
sink_write_range(void *ctx, uint64_t offset, uint64_t len)
{
    struct test_sink *s = ctx;
    if (offset > s->msg_len || len > s->msg_len - offset || len == 0 ||
        s->range_count == RANGES_MAX || len > SINK_BYTES - s->len) {
        s->is_range_bad = true;
        return;
    }
    s->ranges[s->range_count++] = (struct range){ offset, len };
    if (s->msg == NULL) {
        memset(s->buf + s->len, '#', (size_t)len); /* a message not read */
    } else {
        memcpy(s->buf + s->len, s->msg + offset, (size_t)len);
    }
    s->len += (size_t)len;
}

static struct imap_mime_part parts[IMAP_MIME_PARTS_MAX];
static char work_buf[IMAP_FETCH_WORK_BYTES_DEFAULT];

static struct imap_message
message_make(const char *data, size_t len)
{
    struct imap_message m;
    memset(&m, 0, sizeof(m));
    m.seq = 3;
    m.uid = 7;
    m.flags = 0;
    m.modseq = 12345;
    m.internal_date = 760686745; /* 7-Feb-1994 21:52:25 -0800 */
    m.internal_date_tz_minutes = -480;
    m.size = len;
    m.data = data;
    m.data_len = len;
    return m;
}

/* Parse items and write the response for msg; returns imap_fetch_write's
 * result (or 1000 + parse result when parsing failed). */
static int
run_fetch(const char *items, unsigned parse_flags, const struct imap_message *msg,
          const struct imap_fetch_options *options, size_t buf_bytes)
{
    static struct imap_fetch_request req;
    const char *text;
    int r = parse_fetch(items, parse_flags, &req, &text);
    if (r != IMAP_FETCH_PARSE_OK) {
        fprintf(stderr, "parse of %s failed: %d %s\n", items, r, r >= 0 ? text : "");
        return 1000 + r;
    }
    memset(&ts, 0, sizeof(ts));
    ts.msg = msg->data;
    ts.msg_len = msg->data_len;
    struct imap_fetch_sink sink = { .ctx = &ts, .write = sink_write,
                                    .write_range = sink_write_range };
    struct imap_fetch_work work = { .parts = parts, .parts_cap = IMAP_MIME_PARTS_MAX,
                                    .buf = work_buf, .buf_bytes = buf_bytes };
    struct imap_fetch_options none = { 0 };
    return imap_fetch_write(&req, msg, options != NULL ? options : &none, &work, &sink);
}

static void
check_response(int line, const char *items, unsigned parse_flags, const struct imap_message *msg,
               const struct imap_fetch_options *options, const char *want, size_t want_len)
{
    int r = run_fetch(items, parse_flags, msg, options, sizeof(work_buf));
    if (r != 0) {
        fprintf(stderr, "line %d: fetch %s returned %d\n", line, items, r);
    }
    CHECK(r == 0);
    CHECK(!ts.is_range_bad);
    if (ts.len != want_len || memcmp(ts.buf, want, want_len) != 0) {
        fprintf(stderr, "line %d: fetch %s\n", line, items);
    }
    CHECK_BYTES(ts.buf, ts.len, want, want_len);
}

#define RESP(items, msg, want) \
    check_response(__LINE__, (items), 0, (msg), NULL, (want), sizeof(want) - 1)
#define RESP_OPT(items, pflags, msg, opt, want) \
    check_response(__LINE__, (items), (pflags), (msg), (opt), (want), sizeof(want) - 1)

/* --- decoders --------------------------------------------------------------- */

struct decode_case {
    const char *in;
    long        want_len; /* -1: error */
    const char *want;
};

static void
test_decode_base64(void)
{
    static const struct decode_case cases[] = {
        { "SGVsbG8=", 5, "Hello" },
        { "SGVs\r\nbG8=", 5, "Hello" },
        { "SGVs bG8h\r\n", 6, "Hello!" },
        { "SGVsbA==", 4, "Hell" },
        { "SGVsbG8h", 6, "Hello!" },
        { "SGVsbG8", 5, "Hello" },          /* missing padding */
        { "QQ", 1, "A" },
        { "Q", 0, "" },                     /* a lone digit carries no byte */
        { "", 0, "" },
        { "\r\n\r\n", 0, "" },
        { "AAEC/w==", 4, "\x00\x01\x02\xff" },
        { "+/+/", 3, "\xfb\xff\xbf" },
        { "SGVsbG8=$$$", 5, "Hello" },      /* stops at the padding */
        { "SGV$bG8=", -1, NULL },           /* outside the alphabet */
        { "SGVs-_==", -1, NULL },           /* base64url is not MIME base64 */
        { "SGVs\0bG8=", -1, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct decode_case *c = &cases[i];
        size_t len = strlen(c->in);
        if (i == sizeof(cases) / sizeof(cases[0]) - 1) {
            len = 9; /* the NUL case */
        }
        char out[64];
        long n = imap_decode_base64(c->in, len, out, len);
        CHECK(n == c->want_len);
        if (n >= 0 && n == c->want_len) {
            CHECK_BYTES(out, (size_t)n, c->want, (size_t)c->want_len);
        }
        /* Exactly the decoded size fits; one less does not. */
        if (c->want_len > 0) {
            CHECK(imap_decode_base64(c->in, len, out, (size_t)c->want_len) == c->want_len);
            CHECK(imap_decode_base64(c->in, len, out, (size_t)c->want_len - 1) == -1);
        }
    }
    CHECK(imap_decode_base64(NULL, 0, NULL, 0) == 0);
}

static void
test_decode_qp(void)
{
    static const struct decode_case cases[] = {
        { "a=3Db", 3, "a=b" },
        { "=3d", 1, "=" },                      /* lower-case hex */
        { "=C3=A9", 2, "\xc3\xa9" },
        { "=c3=a9", 2, "\xc3\xa9" },
        { "soft=\r\nbreak", 9, "softbreak" },
        { "soft=\nbreak", 9, "softbreak" },     /* bare LF */
        { "pad= \t\r\nx", 4, "padx" },          /* transport padding after '=' */
        { "end=", 3, "end" },                   /* soft break at the end */
        { "trail  \r\nx", 8, "trail\r\nx" },    /* trailing white space dropped */
        { "tab\t\r\n", 5, "tab\r\n" },
        { "end  ", 3, "end" },
        { "a b\tc", 5, "a b\tc" },
        { "x  =\r\ny", 4, "x  y" },             /* spaces before a soft break stay */
        { "=ZZ", 3, "=ZZ" },                    /* invalid escape kept */
        { "=4", 2, "=4" },
        { "=4G", 3, "=4G" },
        { "a=\rb", 4, "a=\rb" },                /* '=' CR without LF: literal */
        { "line\r\n", 6, "line\r\n" },
        { "", 0, "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct decode_case *c = &cases[i];
        size_t len = strlen(c->in);
        char out[64];
        long n = imap_decode_qp(c->in, len, out, len);
        CHECK(n == c->want_len);
        if (n >= 0 && n == c->want_len) {
            CHECK_BYTES(out, (size_t)n, c->want, (size_t)c->want_len);
        }
        if (c->want_len > 0) {
            CHECK(imap_decode_qp(c->in, len, out, (size_t)c->want_len) == c->want_len);
            CHECK(imap_decode_qp(c->in, len, out, (size_t)c->want_len - 1) == -1);
        }
    }
}

struct collect {
    char   buf[65536];
    size_t len;
    size_t calls;
    size_t max_piece;
};

static void
collect_emit(void *ctx, const char *bytes, size_t len)
{
    struct collect *c = ctx;
    c->calls++;
    if (len > c->max_piece) {
        c->max_piece = len;
    }
    if (len <= sizeof(c->buf) - c->len) {
        memcpy(c->buf + c->len, bytes, len);
        c->len += len;
    }
}

static size_t
base64_encode_lines(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    size_t line = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[n++] = digits[(v >> 18) & 63];
        out[n++] = digits[(v >> 12) & 63];
        out[n++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? digits[v & 63] : '=';
        line += 4;
        if (line == 76) {
            out[n++] = '\r';
            out[n++] = '\n';
            line = 0;
        }
    }
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

static unsigned char big_plain[10000];
static char big_b64[16000];
static size_t big_b64_len;

static void
test_decode_stream(void)
{
    for (size_t i = 0; i < sizeof(big_plain); i++) {
        big_plain[i] = (unsigned char)(i * 7 + i / 256);
    }
    big_b64_len = base64_encode_lines(big_plain, sizeof(big_plain), big_b64);
    static struct collect c;
    memset(&c, 0, sizeof(c));
    long n = imap_decode_base64_stream(big_b64, big_b64_len, collect_emit, &c);
    CHECK(n == (long)sizeof(big_plain));
    CHECK(c.max_piece <= IMAP_DECODE_CHUNK_BYTES);
    CHECK(c.calls == 3);
    CHECK_BYTES(c.buf, c.len, big_plain, sizeof(big_plain));
    static char out[sizeof(big_plain)];
    CHECK(imap_decode_base64(big_b64, big_b64_len, out, sizeof(out)) == (long)sizeof(out));
    CHECK(memcmp(out, big_plain, sizeof(out)) == 0);

    /* QP: 5000 "=41" escapes decode to 5000 'A' in two pieces. */
    static char qp[15000];
    for (size_t i = 0; i < 5000; i++) {
        memcpy(qp + 3 * i, "=41", 3);
    }
    memset(&c, 0, sizeof(c));
    n = imap_decode_qp_stream(qp, 15000, collect_emit, &c);
    CHECK(n == 5000);
    CHECK(c.calls == 2);
    CHECK(c.len == 5000 && c.buf[0] == 'A' && c.buf[4999] == 'A');

    /* An error after the first chunk: -1. */
    memcpy(big_b64 + 8000, "$", 1);
    memset(&c, 0, sizeof(c));
    CHECK(imap_decode_base64_stream(big_b64, big_b64_len, collect_emit, &c) == -1);
    big_b64_len = base64_encode_lines(big_plain, sizeof(big_plain), big_b64);
}

/* --- parsing ---------------------------------------------------------------- */

struct parse_case {
    const char *items;
    unsigned    flags;
    int         want; /* enum imap_fetch_parse_result, or -1: the generic parser fails */
    uint32_t    items_bits;
    size_t      sections;
    int         needs;
    bool        sets_seen;
};

#define OK IMAP_FETCH_PARSE_OK
#define BAD IMAP_FETCH_PARSE_BAD
#define N_NO IMAP_FETCH_NEEDS_NOTHING
#define N_SIZE IMAP_FETCH_NEEDS_SIZE
#define N_HDR IMAP_FETCH_NEEDS_HEADER
#define N_MSG IMAP_FETCH_NEEDS_MESSAGE
#define UIDF IMAP_FETCH_PARSE_F_UID
#define QRF IMAP_FETCH_PARSE_F_QRESYNC

static void
test_parse_table(void)
{
    static const struct parse_case cases[] = {
        { "FLAGS", 0, OK, IMAP_FETCH_FLAGS, 0, N_NO, false },
        { "flags", 0, OK, IMAP_FETCH_FLAGS, 0, N_NO, false },
        { "(UID FLAGS)", 0, OK, IMAP_FETCH_UID | IMAP_FETCH_FLAGS, 0, N_NO, false },
        { "(FLAGS FLAGS)", 0, OK, IMAP_FETCH_FLAGS, 0, N_NO, false },
        { "ALL", 0, OK,
          IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
              IMAP_FETCH_ENVELOPE,
          0, N_HDR, false },
        { "fast", 0, OK, IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE, 0,
          N_NO, false },
        { "FULL", 0, OK,
          IMAP_FETCH_FLAGS | IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE |
              IMAP_FETCH_ENVELOPE | IMAP_FETCH_BODY,
          0, N_MSG, false },
        { "(INTERNALDATE RFC822.SIZE MODSEQ)", 0, OK,
          IMAP_FETCH_INTERNALDATE | IMAP_FETCH_RFC822_SIZE | IMAP_FETCH_MODSEQ, 0, N_NO, false },
        { "ENVELOPE", 0, OK, IMAP_FETCH_ENVELOPE, 0, N_HDR, false },
        { "BODY", 0, OK, IMAP_FETCH_BODY, 0, N_MSG, false },
        { "BODYSTRUCTURE", 0, OK, IMAP_FETCH_BODYSTRUCTURE, 0, N_MSG, false },
        { "FLAGS", UIDF, OK, IMAP_FETCH_FLAGS | IMAP_FETCH_UID, 0, N_NO, false },
        { "BODY[]", 0, OK, 0, 1, N_SIZE, true },
        { "BODY.PEEK[]", 0, OK, 0, 1, N_SIZE, false },
        { "(UID FLAGS RFC822.SIZE BODY.PEEK[]<0.100>)", 0, OK,
          IMAP_FETCH_UID | IMAP_FETCH_FLAGS | IMAP_FETCH_RFC822_SIZE, 1, N_SIZE, false },
        /* A header item beside a whole message: the whole message, never
         * just the header block (found by fuzz_imap_fetch). */
        { "(BODY.PEEK[] RFC822.HEADER)", 0, OK, 0, 2, N_MSG, false },
        { "(RFC822.HEADER BODY.PEEK[])", 0, OK, 0, 2, N_MSG, false },
        { "(BODY.PEEK[] ENVELOPE)", 0, OK, IMAP_FETCH_ENVELOPE, 1, N_MSG, false },
        { "(ENVELOPE RFC822)", 0, OK, IMAP_FETCH_ENVELOPE, 1, N_MSG, true },
        { "(BODY.PEEK[] BODY.PEEK[1])", 0, OK, 0, 2, N_MSG, false },
        { "(BODY.PEEK[] BODYSTRUCTURE)", 0, OK, IMAP_FETCH_BODYSTRUCTURE, 1, N_MSG, false },
        { "body.peek[header]", 0, OK, 0, 1, N_HDR, false },
        { "BODY[HEADER]", 0, OK, 0, 1, N_HDR, true },
        { "BODY.PEEK[HEADER.FIELDS (From To)]", 0, OK, 0, 1, N_HDR, false },
        { "BODY.PEEK[HEADER.FIELDS.NOT (\"From\" NIL)]", 0, OK, 0, 1, N_HDR, false },
        { "BODY.PEEK[HEADER.FIELDS ({4+}\r\nFrom)]", 0, OK, 0, 1, N_HDR, false },
        { "BODY.PEEK[TEXT]", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[1]", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[1.2.3.MIME]", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[2.HEADER]", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[2.HEADER.FIELDS (X)]", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[2.TEXT]<0.1>", 0, OK, 0, 1, N_MSG, false },
        { "BODY.PEEK[4294967295]", 0, OK, 0, 1, N_MSG, false },
        { "BODY[]<4294967295.4294967295>", 0, OK, 0, 1, N_SIZE, true },
        { "RFC822", 0, OK, 0, 1, N_SIZE, true },
        { "RFC822.HEADER", 0, OK, 0, 1, N_HDR, false },
        { "RFC822.TEXT", 0, OK, 0, 1, N_MSG, true },
        { "(RFC822.HEADER ENVELOPE)", 0, OK, IMAP_FETCH_ENVELOPE, 1, N_HDR, false },
        { "BINARY[1]", 0, OK, 0, 1, N_MSG, true },
        { "BINARY[]", 0, OK, 0, 1, N_MSG, true },
        { "BINARY.PEEK[1.2]<0.10>", 0, OK, 0, 1, N_MSG, false },
        { "BINARY.SIZE[1]", 0, OK, 0, 1, N_MSG, false },
        { "(FLAGS BODY.PEEK[1] BODY[2])", 0, OK, IMAP_FETCH_FLAGS, 2, N_MSG, true },
        { "FLAGS (CHANGEDSINCE 5)", 0, OK, IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ, 0, N_NO, false },
        { "(FLAGS) (changedsince 0)", 0, OK, IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ, 0, N_NO,
          false },
        { "(FLAGS) (CHANGEDSINCE 9223372036854775807)", 0, OK,
          IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ, 0, N_NO, false },
        { "(FLAGS) (CHANGEDSINCE 5 VANISHED)", UIDF | QRF, OK,
          IMAP_FETCH_UID | IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ, 0, N_NO, false },
        { "(FLAGS) (VANISHED CHANGEDSINCE 5)", UIDF | QRF, OK,
          IMAP_FETCH_UID | IMAP_FETCH_FLAGS | IMAP_FETCH_MODSEQ, 0, N_NO, false },
        /* Invalid. */
        { "", 0, BAD, 0, 0, 0, false },
        { "()", 0, BAD, 0, 0, 0, false },
        { "(ALL)", 0, BAD, 0, 0, 0, false },
        { "(FLAGS FAST)", 0, BAD, 0, 0, 0, false },
        { "FOO", 0, BAD, 0, 0, 0, false },
        { "\"FLAGS\"", 0, BAD, 0, 0, 0, false },
        { "(FLAGS (UID))", 0, BAD, 0, 0, 0, false },
        { "BINARY", 0, BAD, 0, 0, 0, false },
        { "RFC822.PEEK", 0, BAD, 0, 0, 0, false },
        { "BODY[0]", 0, BAD, 0, 0, 0, false },
        { "BODY[1.0]", 0, BAD, 0, 0, 0, false },
        { "BODY[01]", 0, BAD, 0, 0, 0, false },
        { "BODY[1.]", 0, BAD, 0, 0, 0, false },
        { "BODY[.1]", 0, BAD, 0, 0, 0, false },
        { "BODY[1..2]", 0, BAD, 0, 0, 0, false },
        { "BODY[1x]", 0, BAD, 0, 0, 0, false },
        { "BODY[4294967296]", 0, BAD, 0, 0, 0, false },
        { "BODY[99999999999]", 0, BAD, 0, 0, 0, false },
        { "BODY[MIME]", 0, BAD, 0, 0, 0, false },
        { "BODY[1.FOO]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADERS]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER.FIELDS]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER.FIELDS ()]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER.FIELDS From]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER.FIELDS ((From))]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER (From)]", 0, BAD, 0, 0, 0, false },
        { "BODY[TEXT (From)]", 0, BAD, 0, 0, 0, false },
        { "BODY[HEADER.FIELDS (From) (To)]", 0, BAD, 0, 0, 0, false },
        { "BODY[\"1\"]", 0, BAD, 0, 0, 0, false },
        { "BINARY[HEADER]", 0, BAD, 0, 0, 0, false },
        { "BINARY[1.MIME]", 0, BAD, 0, 0, 0, false },
        { "BINARY[TEXT]", 0, BAD, 0, 0, 0, false },
        { "BINARY.SIZE[1]<0.5>", 0, BAD, 0, 0, 0, false },
        { "BODY[TEXT]<0.0>", 0, -1, 0, 0, 0, false },
        { "BODY[TEXT", 0, -1, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE)", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE x)", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE -1)", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE 9223372036854775808)", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE 99999999999999999999999)", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", 0, BAD, 0, 0, 0, false },
        { "FLAGS ()", 0, BAD, 0, 0, 0, false },
        { "FLAGS (FOO)", 0, BAD, 0, 0, 0, false },
        { "FLAGS UID", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE 1) X", 0, BAD, 0, 0, 0, false },
        { "FLAGS (CHANGEDSINCE 1 VANISHED)", 0, BAD, 0, 0, 0, false },        /* not UID */
        { "FLAGS (CHANGEDSINCE 1 VANISHED)", QRF, BAD, 0, 0, 0, false },      /* not UID */
        { "FLAGS (CHANGEDSINCE 1 VANISHED)", UIDF, BAD, 0, 0, 0, false },     /* no QRESYNC */
        { "FLAGS (VANISHED)", UIDF | QRF, BAD, 0, 0, 0, false },              /* no CHANGEDSINCE */
        { "FLAGS (CHANGEDSINCE 1 VANISHED VANISHED)", UIDF | QRF, BAD, 0, 0, 0, false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *c = &cases[i];
        static struct imap_fetch_request req;
        const char *text = NULL;
        int r = parse_fetch(c->items, c->flags, &req, &text);
        if (r != c->want) {
            fprintf(stderr, "case %zu \"%s\": got %d want %d\n", i, c->items, r, c->want);
        }
        CHECK(r == c->want);
        if (r == BAD) {
            CHECK(text != NULL && text[0] != '\0');
        }
        if (r != OK || c->want != OK) {
            continue;
        }
        if (req.items != c->items_bits || req.section_count != c->sections ||
            (int)req.needs != c->needs || req.sets_seen != c->sets_seen) {
            fprintf(stderr, "case %zu \"%s\": items %x sections %zu needs %d seen %d\n", i,
                    c->items, req.items, req.section_count, (int)req.needs, req.sets_seen);
        }
        CHECK(req.items == c->items_bits);
        CHECK(req.section_count == c->sections);
        CHECK((int)req.needs == c->needs);
        CHECK(req.sets_seen == c->sets_seen);
    }
}

static void
test_parse_details(void)
{
    static struct imap_fetch_request req;
    const char *text;
    CHECK(parse_fetch("BODY.PEEK[1.2.HEADER.FIELDS (From \"X-\\\"Q\" NIL)]<5.10>", 0, &req,
                      &text) == OK);
    CHECK(req.section_count == 1);
    const struct imap_fetch_section *sec = &req.sections[0];
    CHECK(sec->kind == IMAP_FETCH_SECTION_BODY);
    CHECK(sec->spec == IMAP_FETCH_SPEC_HEADER_FIELDS);
    CHECK(sec->is_peek);
    CHECK(sec->is_partial && sec->partial_offset == 5 && sec->partial_len == 10);
    CHECK(span_equals_nocase(sec->part, "1.2") && sec->part_depth == 2);
    CHECK(sec->field_first == 0 && sec->field_count == 3 && req.field_count == 3);
    CHECK(span_equals_nocase(req.fields[0].name, "From") && req.fields[0].is_atom);
    CHECK(span_equals_nocase(req.fields[1].name, "X-\\\"Q") && !req.fields[1].is_atom &&
          req.fields[1].is_escaped);
    CHECK(span_equals_nocase(req.fields[2].name, "NIL") && req.fields[2].is_atom);

    CHECK(parse_fetch("(FLAGS) (CHANGEDSINCE 77 VANISHED)", UIDF | QRF, &req, &text) == OK);
    CHECK(req.has_changedsince && req.changedsince == 77 && req.is_vanished);
    CHECK(parse_fetch("FLAGS", 0, &req, &text) == OK);
    CHECK(!req.has_changedsince && !req.is_vanished && req.changedsince == 0);

    /* Part depth: IMAP_MIME_DEPTH_MAX numbers, then one more. */
    static char items[4096];
    size_t n = (size_t)snprintf(items, sizeof(items), "BODY[1");
    for (int i = 1; i < IMAP_MIME_DEPTH_MAX; i++) {
        n += (size_t)snprintf(items + n, sizeof(items) - n, ".1");
    }
    snprintf(items + n, sizeof(items) - n, "]");
    CHECK(parse_fetch(items, 0, &req, &text) == OK);
    CHECK(req.sections[0].part_depth == IMAP_MIME_DEPTH_MAX);
    snprintf(items + n, sizeof(items) - n, ".1]");
    CHECK(parse_fetch(items, 0, &req, &text) == BAD);

    /* Sections: max - 1, max, max + 1. */
    for (int count = IMAP_FETCH_SECTIONS_MAX - 1; count <= IMAP_FETCH_SECTIONS_MAX + 1; count++) {
        n = (size_t)snprintf(items, sizeof(items), "(");
        for (int i = 0; i < count; i++) {
            n += (size_t)snprintf(items + n, sizeof(items) - n, "%sBODY.PEEK[%d]", i ? " " : "",
                                  i + 1);
        }
        snprintf(items + n, sizeof(items) - n, ")");
        int r = parse_fetch(items, 0, &req, &text);
        CHECK(r == (count <= IMAP_FETCH_SECTIONS_MAX ? OK : IMAP_FETCH_PARSE_TOO_MANY));
        if (r == OK) {
            CHECK(req.section_count == (size_t)count);
        }
    }
    /* RFC822 items count as sections too. */
    n = (size_t)snprintf(items, sizeof(items), "(");
    for (int i = 0; i < IMAP_FETCH_SECTIONS_MAX; i++) {
        n += (size_t)snprintf(items + n, sizeof(items) - n, "%sRFC822.HEADER", i ? " " : "");
    }
    snprintf(items + n, sizeof(items) - n, " RFC822)");
    CHECK(parse_fetch(items, 0, &req, &text) == IMAP_FETCH_PARSE_TOO_MANY);

    /* Header field names: max - 1, max, max + 1, over two sections. */
    for (int count = IMAP_FETCH_FIELDS_MAX - 1; count <= IMAP_FETCH_FIELDS_MAX + 1; count++) {
        n = (size_t)snprintf(items, sizeof(items), "(BODY.PEEK[HEADER.FIELDS (A)] "
                                                   "BODY.PEEK[HEADER.FIELDS.NOT (");
        for (int i = 1; i < count; i++) {
            n += (size_t)snprintf(items + n, sizeof(items) - n, "%sX-%d", i > 1 ? " " : "", i);
        }
        snprintf(items + n, sizeof(items) - n, ")])");
        int r = parse_fetch(items, 0, &req, &text);
        CHECK(r == (count <= IMAP_FETCH_FIELDS_MAX ? OK : IMAP_FETCH_PARSE_TOO_MANY));
        if (r == OK) {
            CHECK(req.field_count == (size_t)count);
            CHECK(req.sections[1].field_first == 1);
            CHECK(req.sections[1].field_count == (uint32_t)count - 1);
        }
    }
}

/* --- responses: a single-part message ----------------------------------- */

static const char m1_data[] = "From: a@b\r\n"
                              "Subject: Hi\r\n"
                              "to: c@d\r\n"
                              "X-Long: a\r\n"
                              " b\r\n"
                              "\r\n"
                              "Hello\r\n"
                              "World\r\n";
#define M1_HEADER "From: a@b\r\nSubject: Hi\r\nto: c@d\r\nX-Long: a\r\n b\r\n\r\n"
#define M1_BODY "Hello\r\nWorld\r\n"

static void
test_single_part(void)
{
    struct imap_message m = message_make(m1_data, sizeof(m1_data) - 1);
    m.flags = IMAP_FLAG_SEEN | IMAP_FLAG_RECENT | IMAP_FLAG_ANSWERED;
    RESP("FLAGS", &m, "* 3 FETCH (FLAGS (\\Answered \\Seen \\Recent))\r\n");
    m.flags = IMAP_FLAG_DRAFT | IMAP_FLAG_DELETED | IMAP_FLAG_FLAGGED;
    static const char *const keywords[] = { "$Forwarded", "Junk", "work" };
    m.keyword_names = keywords;
    m.keyword_count = 3;
    m.keyword_mask = 0x5;
    RESP("FLAGS", &m, "* 3 FETCH (FLAGS (\\Flagged \\Deleted \\Draft $Forwarded work))\r\n");
    m.flags = 0;
    m.keyword_mask = 0;
    RESP("FLAGS", &m, "* 3 FETCH (FLAGS ())\r\n");
    RESP("(RFC822.SIZE INTERNALDATE UID)", &m,
         "* 3 FETCH (UID 7 INTERNALDATE \"07-Feb-1994 21:52:25 -0800\" RFC822.SIZE 64)\r\n");
    m.internal_date = 1704279600; /* 2024-01-03 11:00:00 UTC */
    m.internal_date_tz_minutes = 330;
    RESP("INTERNALDATE", &m, "* 3 FETCH (INTERNALDATE \"03-Jan-2024 16:30:00 +0530\")\r\n");
    m.internal_date = 0;
    m.internal_date_tz_minutes = 0;
    RESP("INTERNALDATE", &m, "* 3 FETCH (INTERNALDATE \"01-Jan-1970 00:00:00 +0000\")\r\n");
    m.internal_date = 951782400; /* 2000-02-29 00:00:00 UTC */
    m.internal_date_tz_minutes = -1;
    RESP("INTERNALDATE", &m, "* 3 FETCH (INTERNALDATE \"28-Feb-2000 23:59:00 -0001\")\r\n");

    /* Sections. */
    RESP("BODY[]", &m, "* 3 FETCH (BODY[] {64}\r\n" M1_HEADER M1_BODY ")\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 0 && ts.ranges[0].len == 64);
    RESP("RFC822", &m, "* 3 FETCH (RFC822 {64}\r\n" M1_HEADER M1_BODY ")\r\n");
    RESP("BODY.PEEK[TEXT]", &m, "* 3 FETCH (BODY[TEXT] {14}\r\n" M1_BODY ")\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 50 && ts.ranges[0].len == 14);
    RESP("RFC822.TEXT", &m, "* 3 FETCH (RFC822.TEXT {14}\r\n" M1_BODY ")\r\n");
    RESP("body.peek[header]", &m, "* 3 FETCH (BODY[HEADER] {50}\r\n" M1_HEADER ")\r\n");
    RESP("RFC822.HEADER", &m, "* 3 FETCH (RFC822.HEADER {50}\r\n" M1_HEADER ")\r\n");
    /* A non-multipart message has part 1: its body; 1.MIME is its header
     * (Dovecot); nothing else exists. */
    RESP("BODY.PEEK[1]", &m, "* 3 FETCH (BODY[1] {14}\r\n" M1_BODY ")\r\n");
    RESP("BODY.PEEK[1.MIME]", &m, "* 3 FETCH (BODY[1.MIME] {50}\r\n" M1_HEADER ")\r\n");
    RESP("BODY.PEEK[2]", &m, "* 3 FETCH (BODY[2] \"\")\r\n");
    CHECK(ts.range_count == 0);
    RESP("BODY.PEEK[1.1]", &m, "* 3 FETCH (BODY[1.1] \"\")\r\n");
    RESP("BODY.PEEK[1.HEADER]", &m, "* 3 FETCH (BODY[1.HEADER] \"\")\r\n");
    RESP("BODY.PEEK[1.TEXT]", &m, "* 3 FETCH (BODY[1.TEXT] \"\")\r\n");

    /* Header fields: case-insensitive, message order, folding kept. */
    RESP("BODY.PEEK[HEADER.FIELDS (to SUBJECT)]", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS (TO SUBJECT)] {24}\r\n"
         "Subject: Hi\r\nto: c@d\r\n\r\n)\r\n");
    CHECK(ts.range_count == 0);
    RESP("BODY.PEEK[HEADER.FIELDS (x-LONG)]", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS (X-LONG)] {17}\r\nX-Long: a\r\n b\r\n\r\n)\r\n");
    RESP("BODY.PEEK[HEADER.FIELDS.NOT (\"x-long\" From)]", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS.NOT (\"X-LONG\" FROM)] {24}\r\n"
         "Subject: Hi\r\nto: c@d\r\n\r\n)\r\n");
    RESP("BODY.PEEK[HEADER.FIELDS (Nope From-)]", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS (NOPE FROM-)] {2}\r\n\r\n)\r\n");
    RESP("BODY.PEEK[HEADER.FIELDS ({4+}\r\nFROM)]", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS (\"FROM\")] {13}\r\nFrom: a@b\r\n\r\n)\r\n");
    RESP("BODY.PEEK[HEADER.FIELDS (From)]<5.6>", &m,
         "* 3 FETCH (BODY[HEADER.FIELDS (FROM)]<5> {6}\r\n a@b\r\n)\r\n");

    /* Partial ranges: start, middle, last byte, exact end, past the end. */
    RESP("BODY.PEEK[TEXT]<0.5>", &m, "* 3 FETCH (BODY[TEXT]<0> {5}\r\nHello)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 50 && ts.ranges[0].len == 5);
    RESP("BODY.PEEK[TEXT]<7.100>", &m, "* 3 FETCH (BODY[TEXT]<7> {7}\r\nWorld\r\n)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 57 && ts.ranges[0].len == 7);
    RESP("BODY.PEEK[TEXT]<13.1>", &m, "* 3 FETCH (BODY[TEXT]<13> {1}\r\n\n)\r\n");
    RESP("BODY.PEEK[TEXT]<0.14>", &m, "* 3 FETCH (BODY[TEXT]<0> {14}\r\n" M1_BODY ")\r\n");
    RESP("BODY.PEEK[TEXT]<14.1>", &m, "* 3 FETCH (BODY[TEXT]<14> \"\")\r\n");
    RESP("BODY.PEEK[TEXT]<4294967295.4294967295>", &m,
         "* 3 FETCH (BODY[TEXT]<4294967295> \"\")\r\n");
    CHECK(ts.range_count == 0);
    RESP("BODY[]<63.2>", &m, "* 3 FETCH (BODY[]<63> {1}\r\n\n)\r\n");

    /* Implied items: UID first, FLAGS after \Seen was set, MODSEQ. */
    m.flags = IMAP_FLAG_SEEN;
    struct imap_fetch_options opt = { .add_uid = true, .add_flags = true, .add_modseq = true };
    RESP_OPT("BODY[TEXT]<0.5>", UIDF, &m, &opt,
             "* 3 FETCH (UID 7 FLAGS (\\Seen) MODSEQ (12345) BODY[TEXT]<0> {5}\r\nHello)\r\n");
    RESP_OPT("(FLAGS) (CHANGEDSINCE 1)", 0, &m, NULL,
             "* 3 FETCH (FLAGS (\\Seen) MODSEQ (12345))\r\n");
    RESP_OPT("(BODY.PEEK[1] MODSEQ FLAGS UID RFC822.HEADER)", 0, &m, NULL,
             "* 3 FETCH (UID 7 FLAGS (\\Seen) MODSEQ (12345) BODY[1] {14}\r\n" M1_BODY
             " RFC822.HEADER {50}\r\n" M1_HEADER ")\r\n");
    CHECK(ts.range_count == 2 && ts.ranges[0].offset == 50 && ts.ranges[1].offset == 0);
    m.modseq = UINT64_C(9223372036854775807);
    RESP("MODSEQ", &m, "* 3 FETCH (MODSEQ (9223372036854775807))\r\n");

    /* ENVELOPE and BODY[HEADER] work from the header alone (NEEDS_HEADER). */
    struct imap_message h = message_make(m1_data, 50);
    h.size = 64;
    RESP("(RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (Subject)])", &h,
         "* 3 FETCH (RFC822.SIZE 64 ENVELOPE (NIL \"Hi\" ((NIL NIL \"a\" \"b\")) "
         "((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\")) ((NIL NIL \"c\" \"d\")) NIL NIL NIL "
         "NIL) BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: Hi\r\n\r\n)\r\n");

    /* Index data only: the message content is not needed. */
    struct imap_message bare = message_make(NULL, 0);
    bare.size = 1234;
    RESP("FAST", &bare,
         "* 3 FETCH (FLAGS () INTERNALDATE \"07-Feb-1994 21:52:25 -0800\" RFC822.SIZE 1234)\r\n");

    /* A header without a final line break and no body. */
    static const char nobreak[] = "Subject: x\r\nFrom: y";
    struct imap_message nb = message_make(nobreak, sizeof(nobreak) - 1);
    RESP("BODY.PEEK[HEADER.FIELDS (From)]", &nb,
         "* 3 FETCH (BODY[HEADER.FIELDS (FROM)] {11}\r\nFrom: y\r\n\r\n)\r\n");
    RESP("BODY.PEEK[TEXT]", &nb, "* 3 FETCH (BODY[TEXT] \"\")\r\n");
}

/* --- responses: a message not read (IMAP_FETCH_NEEDS_SIZE) ----------------- */

/* Whole-message sections need only the size: a message known to hold no
 * NUL may come without its bytes, which then go out by write_range alone
 * (the caller splices them from the file). */
static void
test_unread(void)
{
    struct imap_message u = message_make(NULL, 10);
    u.is_nul_free = true;
    RESP("BODY.PEEK[]", &u, "* 3 FETCH (BODY[] {10}\r\n##########)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 0 && ts.ranges[0].len == 10);
    CHECK(ts.write_calls >= 1);
    RESP("(UID RFC822.SIZE BODY.PEEK[]<2.5>)", &u,
         "* 3 FETCH (UID 7 RFC822.SIZE 10 BODY[]<2> {5}\r\n#####)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 2 && ts.ranges[0].len == 5);
    RESP("RFC822", &u, "* 3 FETCH (RFC822 {10}\r\n##########)\r\n");
    RESP("BODY.PEEK[]<20.5>", &u, "* 3 FETCH (BODY[]<20> \"\")\r\n");
    CHECK(ts.range_count == 0);
    RESP("(BODY.PEEK[]<0.3> BODY.PEEK[]<7.9>)", &u,
         "* 3 FETCH (BODY[]<0> {3}\r\n### BODY[]<7> {3}\r\n###)\r\n");
    CHECK(ts.range_count == 2 && ts.ranges[1].offset == 7 && ts.ranges[1].len == 3);

    /* The same message read: the same answer, from the same ranges. */
    static const char bytes[] = "Subject: x";
    struct imap_message r = message_make(bytes, sizeof(bytes) - 1);
    r.is_nul_free = true;
    RESP("BODY.PEEK[]<2.5>", &r, "* 3 FETCH (BODY[]<2> {5}\r\nbject)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == 2);
    /* Read and not known NUL-free: a NUL is still found and replaced. */
    static const char nul[] = "a\0b";
    struct imap_message n = message_make(nul, 3);
    RESP("BODY.PEEK[]", &n, "* 3 FETCH (BODY[] {3}\r\na\x80" "b)\r\n");
    CHECK(ts.range_count == 0);
}

/* --- responses: multipart with a forwarded message ------------------------ */

static char fwd_buf[FIXTURE_BYTES_MAX];
static char want_buf[FIXTURE_BYTES_MAX];

static void
test_forwarded(void)
{
    size_t len = fixture_read(__FILE__, "mime/forwarded.eml", fwd_buf, sizeof(fwd_buf));
    struct imap_message m = message_make(fwd_buf, len);

    RESP("BODY.PEEK[1]", &m, "* 3 FETCH (BODY[1] {10}\r\nSee below.)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].len == 10 &&
          memcmp(fwd_buf + ts.ranges[0].offset, "See below.", 10) == 0);
    RESP("BODY.PEEK[1.MIME]", &m,
         "* 3 FETCH (BODY[1.MIME] {28}\r\nContent-Type: text/plain\r\n\r\n)\r\n");
    RESP("BODY.PEEK[2.MIME]", &m,
         "* 3 FETCH (BODY[2.MIME] {72}\r\nContent-Type: message/rfc822\r\n"
         "Content-Description: forwarded message\r\n\r\n)\r\n");
    RESP("BODY.PEEK[2.1]", &m, "* 3 FETCH (BODY[2.1] {10}\r\ninner text)\r\n");
    RESP("BODY.PEEK[2.1.1]", &m, "* 3 FETCH (BODY[2.1.1] {10}\r\ninner text)\r\n");
    RESP("BODY.PEEK[2.2]", &m, "* 3 FETCH (BODY[2.2] {12}\r\n<b>inner</b>)\r\n");
    RESP("BODY.PEEK[2.2.MIME]", &m,
         "* 3 FETCH (BODY[2.2.MIME] {27}\r\nContent-Type: text/html\r\n\r\n)\r\n");
    RESP("BODY.PEEK[2.HEADER.FIELDS (subject FROM)]", &m,
         "* 3 FETCH (BODY[2.HEADER.FIELDS (SUBJECT FROM)] {60}\r\n"
         "From: \"Inner Sender\" <inner@example.org>\r\nSubject: inner\r\n\r\n)\r\n");
    RESP("BODY.PEEK[1.HEADER]", &m, "* 3 FETCH (BODY[1.HEADER] \"\")\r\n");
    RESP("BODY.PEEK[1.TEXT]", &m, "* 3 FETCH (BODY[1.TEXT] \"\")\r\n");
    RESP("BODY.PEEK[3]", &m, "* 3 FETCH (BODY[3] \"\")\r\n");
    RESP("BODY.PEEK[2.3]", &m, "* 3 FETCH (BODY[2.3] \"\")\r\n");
    RESP("BODY.PEEK[1.2]", &m, "* 3 FETCH (BODY[1.2] \"\")\r\n");
    RESP("BODY.PEEK[2.1.2]", &m, "* 3 FETCH (BODY[2.1.2] \"\")\r\n");

    /* 2 is the whole encapsulated message; 2.HEADER + 2.TEXT make it up. */
    const char *inner = strstr(fwd_buf, "From: \"Inner");
    const char *inner_body = strstr(inner, "\r\n\r\n") + 4;
    /* The closing "--b2--" line keeps its line break (Dovecot). */
    const char *inner_end = strstr(inner, "--b1--");
    CHECK(inner != NULL && inner_end != NULL);
    size_t inner_len = (size_t)(inner_end - inner);
    CHECK(inner_len == 445); /* as in forwarded.bodystructure */
    size_t n = (size_t)snprintf(want_buf, sizeof(want_buf), "* 3 FETCH (BODY[2] {%zu}\r\n",
                                inner_len);
    memcpy(want_buf + n, inner, inner_len);
    n += inner_len;
    memcpy(want_buf + n, ")\r\n", 3);
    n += 3;
    check_response(__LINE__, "BODY.PEEK[2]", 0, &m, NULL, want_buf, n);
    CHECK(ts.range_count == 1 && ts.ranges[0].offset == (uint64_t)(inner - fwd_buf));
    size_t hdr_len = (size_t)(inner_body - inner);
    n = (size_t)snprintf(want_buf, sizeof(want_buf), "* 3 FETCH (BODY[2.HEADER] {%zu}\r\n",
                         hdr_len);
    memcpy(want_buf + n, inner, hdr_len);
    n += hdr_len;
    memcpy(want_buf + n, ")\r\n", 3);
    n += 3;
    check_response(__LINE__, "BODY.PEEK[2.HEADER]", 0, &m, NULL, want_buf, n);
    size_t text_len = (size_t)(inner_end - inner_body);
    n = (size_t)snprintf(want_buf, sizeof(want_buf), "* 3 FETCH (BODY[2.TEXT]<3> {%zu}\r\n",
                         text_len - 3);
    memcpy(want_buf + n, inner_body + 3, text_len - 3);
    n += text_len - 3;
    memcpy(want_buf + n, ")\r\n", 3);
    n += 3;
    check_response(__LINE__, "BODY.PEEK[2.TEXT]<3.100000>", 0, &m, NULL, want_buf, n);
    CHECK(ts.range_count == 1 &&
          ts.ranges[0].offset == (uint64_t)(inner_body - fwd_buf) + 3);

    /* ENVELOPE and BODYSTRUCTURE as the MIME fixtures have them. */
    static char fixture[FIXTURE_BYTES_MAX];
    size_t flen = fixture_read(__FILE__, "mime/forwarded.bodystructure", fixture,
                               sizeof(fixture));
    while (flen > 0 && (fixture[flen - 1] == '\n' || fixture[flen - 1] == '\r')) {
        flen--;
    }
    n = (size_t)snprintf(want_buf, sizeof(want_buf), "* 3 FETCH (BODYSTRUCTURE ");
    memcpy(want_buf + n, fixture, flen);
    n += flen;
    memcpy(want_buf + n, ")\r\n", 3);
    n += 3;
    check_response(__LINE__, "BODYSTRUCTURE", 0, &m, NULL, want_buf, n);
    flen = fixture_read(__FILE__, "mime/forwarded.envelope", fixture, sizeof(fixture));
    while (flen > 0 && (fixture[flen - 1] == '\n' || fixture[flen - 1] == '\r')) {
        flen--;
    }
    n = (size_t)snprintf(want_buf, sizeof(want_buf), "* 3 FETCH (ENVELOPE ");
    memcpy(want_buf + n, fixture, flen);
    n += flen;
    memcpy(want_buf + n, ")\r\n", 3);
    n += 3;
    check_response(__LINE__, "ENVELOPE", 0, &m, NULL, want_buf, n);

    /* The work buffer: exactly the ENVELOPE fits; one byte less is NO
     * [LIMIT] with nothing written. */
    CHECK(run_fetch("ENVELOPE", 0, &m, NULL, flen) == 0);
    CHECK(ts.len == n);
    CHECK(run_fetch("ENVELOPE", 0, &m, NULL, flen + 1) == 0);
    CHECK(run_fetch("(FLAGS ENVELOPE)", 0, &m, NULL, flen - 1) == -E2BIG);
    CHECK(ts.len == 0 && ts.write_calls == 0 && ts.range_count == 0);
    CHECK(strncmp(imap_fetch_error_text(-E2BIG), "[LIMIT]", 7) == 0);
    CHECK(run_fetch("(ENVELOPE BODY)", 0, &m, NULL, 0) == -E2BIG);
    CHECK(ts.len == 0);
}

/* --- responses: BINARY ------------------------------------------------------ */

static const char m3_data[] =
    "Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: Quoted-Printable\r\n"
    "\r\n"
    "Caf=C3=a9 =3D ok=\r\n"
    "!\r\n"
    "--XX\r\n"
    "Content-Type: application/octet-stream\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAw==\r\n"
    "--XX\r\n"
    "Content-Transfer-Encoding: BASE64\r\n"
    "\r\n"
    "SGVs\r\n"
    "bG8=\r\n"
    "--XX\r\n"
    "Content-Transfer-Encoding: x-uuencode\r\n"
    "\r\n"
    "begin 644 x\r\n"
    "--XX\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "SGV$bG8=\r\n"
    "--XX\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "a\0b\r\n"
    "--XX--\r\n";

static void
test_binary(void)
{
    struct imap_message m = message_make(m3_data, sizeof(m3_data) - 1);
    RESP("BINARY.PEEK[1]", &m, "* 3 FETCH (BINARY[1] {11}\r\nCaf\xc3\xa9 = ok!)\r\n");
    CHECK(ts.range_count == 0);
    RESP("BINARY.SIZE[1]", &m, "* 3 FETCH (BINARY.SIZE[1] 11)\r\n");
    RESP("BINARY.PEEK[1]<2.3>", &m, "* 3 FETCH (BINARY[1]<2> {3}\r\nf\xc3\xa9)\r\n");
    RESP("BINARY.PEEK[1]<10.5>", &m, "* 3 FETCH (BINARY[1]<10> {1}\r\n!)\r\n");
    RESP("BINARY.PEEK[1]<11.5>", &m, "* 3 FETCH (BINARY[1]<11> \"\")\r\n");
    RESP("BINARY.PEEK[2]", &m, "* 3 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03)\r\n");
    RESP("BINARY.PEEK[2]<1.2>", &m, "* 3 FETCH (BINARY[2]<1> {2}\r\n\x01\x02)\r\n");
    RESP("BINARY.PEEK[2]<2.2>", &m, "* 3 FETCH (BINARY[2]<2> {2}\r\n\x02\x03)\r\n");
    RESP("BINARY.PEEK[2]<4.1>", &m, "* 3 FETCH (BINARY[2]<4> \"\")\r\n");
    RESP("BINARY.SIZE[2]", &m, "* 3 FETCH (BINARY.SIZE[2] 4)\r\n");
    RESP("BINARY.PEEK[3]", &m, "* 3 FETCH (BINARY[3] {5}\r\nHello)\r\n");
    /* The encoded form is a verbatim range. */
    RESP("BODY.PEEK[2]", &m, "* 3 FETCH (BODY[2] {8}\r\nAAECAw==)\r\n");
    CHECK(ts.range_count == 1 &&
          ts.ranges[0].offset == (uint64_t)(strstr(m3_data, "AAECAw==") - m3_data) &&
          ts.ranges[0].len == 8);
    /* Undecodable base64: NIL and size 0 (Dovecot). */
    RESP("BINARY.PEEK[5]", &m, "* 3 FETCH (BINARY[5] NIL)\r\n");
    RESP("BINARY.SIZE[5]", &m, "* 3 FETCH (BINARY.SIZE[5] 0)\r\n");
    /* Missing parts. */
    RESP("BINARY.PEEK[9]", &m, "* 3 FETCH (BINARY[9] \"\")\r\n");
    RESP("BINARY.SIZE[9]", &m, "* 3 FETCH (BINARY.SIZE[9] 0)\r\n");
    /* Identity encoding with a NUL: literal8 from the file for BINARY, NUL
     * replaced by 0x80 for BODY (which then cannot use write_range). */
    RESP("BINARY.PEEK[6]", &m, "* 3 FETCH (BINARY[6] ~{3}\r\na\0b)\r\n");
    CHECK(ts.range_count == 1 && ts.ranges[0].len == 3);
    RESP("BINARY.SIZE[6]", &m, "* 3 FETCH (BINARY.SIZE[6] 3)\r\n");
    RESP("BODY.PEEK[6]", &m, "* 3 FETCH (BODY[6] {3}\r\na\x80" "b)\r\n");
    CHECK(ts.range_count == 0);
    RESP("BODY.PEEK[6]<2.1>", &m, "* 3 FETCH (BODY[6]<2> {1}\r\nb)\r\n");
    CHECK(ts.range_count == 1);

    /* Unknown Content-Transfer-Encoding: NO [UNKNOWN-CTE], nothing written,
     * even when other items come first. */
    CHECK(run_fetch("(FLAGS UID BODY.PEEK[1] BINARY.PEEK[4])", 0, &m, NULL,
                    sizeof(work_buf)) == -EINVAL);
    CHECK(ts.len == 0 && ts.write_calls == 0 && ts.range_count == 0);
    CHECK(run_fetch("BINARY.SIZE[4]", 0, &m, NULL, sizeof(work_buf)) == -EINVAL);
    CHECK(ts.len == 0);
    CHECK(strncmp(imap_fetch_error_text(-EINVAL), "[UNKNOWN-CTE]", 13) == 0);
    /* BODY of that part is fine: it is not decoded. */
    RESP("BODY.PEEK[4]", &m, "* 3 FETCH (BODY[4] {11}\r\nbegin 644 x)\r\n");

    /* BINARY[] of a multipart (identity) is the message as stored. */
    RESP("BINARY.SIZE[]", &m, "* 3 FETCH (BINARY.SIZE[] 481)\r\n");
    CHECK(sizeof(m3_data) - 1 == 481);

    /* BINARY[] of a base64 message: the header, then the decoded body. */
    static const char b64msg[] = "Content-Transfer-Encoding: base64\r\n\r\nSGk=\r\n";
    struct imap_message b = message_make(b64msg, sizeof(b64msg) - 1);
    RESP("BINARY.PEEK[]", &b,
         "* 3 FETCH (BINARY[] {39}\r\nContent-Transfer-Encoding: base64\r\n\r\nHi)\r\n");
    RESP("BINARY.PEEK[]<36.2>", &b, "* 3 FETCH (BINARY[]<36> {2}\r\n\nH)\r\n");
    RESP("BINARY.PEEK[1]", &b, "* 3 FETCH (BINARY[1] {2}\r\nHi)\r\n");
    RESP("BINARY.SIZE[1]", &b, "* 3 FETCH (BINARY.SIZE[1] 2)\r\n");
}

/* A base64 part larger than the decoder's chunk: sizes and slices across
 * chunk edges. */
static char big_msg[20000];

static void
test_binary_large(void)
{
    static const char head[] = "Content-Type: application/octet-stream\r\n"
                               "Content-Transfer-Encoding: base64\r\n\r\n";
    size_t n = sizeof(head) - 1;
    memcpy(big_msg, head, n);
    memcpy(big_msg + n, big_b64, big_b64_len);
    n += big_b64_len;
    struct imap_message m = message_make(big_msg, n);
    RESP("BINARY.SIZE[1]", &m, "* 3 FETCH (BINARY.SIZE[1] 10000)\r\n");
    static const uint32_t offsets[] = { 0, 4095, 4096, 4097, 8191, 9990 };
    for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
        char items[64];
        snprintf(items, sizeof(items), "BINARY.PEEK[1]<%u.10>", offsets[i]);
        CHECK(run_fetch(items, 0, &m, NULL, sizeof(work_buf)) == 0);
        char prefix[64];
        int p = snprintf(prefix, sizeof(prefix), "* 3 FETCH (BINARY[1]<%u> ", offsets[i]);
        CHECK(ts.len > (size_t)p && memcmp(ts.buf, prefix, (size_t)p) == 0);
        const char *lit = strstr(ts.buf + p, "}\r\n");
        CHECK(lit != NULL);
        if (lit != NULL) {
            CHECK(memcmp(lit + 3, big_plain + offsets[i], 10) == 0);
            CHECK(memcmp(lit + 13, ")\r\n", 3) == 0);
            CHECK((size_t)(lit + 16 - ts.buf) == ts.len);
        }
    }
    CHECK(run_fetch("BINARY.PEEK[1]", 0, &m, NULL, sizeof(work_buf)) == 0);
    const char *lit = strstr(ts.buf, "{10000}\r\n");
    const char *lit8 = strstr(ts.buf, "~{10000}\r\n");
    CHECK(lit != NULL || lit8 != NULL);
    const char *data = lit8 != NULL ? lit8 + 10 : lit + 9;
    CHECK(memcmp(data, big_plain, 10000) == 0);
    CHECK(lit8 != NULL); /* big_plain holds NUL bytes */
}

int
main(void)
{
    test_decode_base64();
    test_decode_qp();
    test_decode_stream();
    test_parse_table();
    test_parse_details();
    test_single_part();
    test_unread();
    test_forwarded();
    test_binary();
    test_binary_large();
    UNIT_DONE();
}
