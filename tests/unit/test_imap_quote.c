/*
 * tests/unit/test_imap_quote.c - IMAP strings into a bounded buffer.
 *
 * Table cases for quoted strings, literals, NIL, atoms and the "for
 * humans" form (Dovecot's, checked against doveadm output in the MIME
 * fixtures); then every writer is run into every smaller room: it must
 * report overflow, write nothing past the room and leave a prefix (for a
 * single token: nothing at all). NUL (never allowed in an IMAP string) is
 * checked at the start, middle and end of quoted and literal candidates,
 * and exhaustively: every string of up to 4 bytes over an alphabet of
 * NUL, CR, '"', 0x80, space and 'a', through every writer and flag, must
 * come out as one well-formed IMAP string without NUL that reads back as
 * the input with NUL as 0x80.
 */
#include <stdbool.h>
#include <string.h>

#include "proto/imap/imap_quote.h"
#include "tests/unit/unit.h"

#define L(s) (s), (sizeof(s) - 1)

enum writer { W_STRING, W_NSTRING, W_ASTRING, W_PRODUCED, W_HUMANS, W_COUNT };

struct quote_case {
    enum writer  writer;
    const char  *in;
    size_t       in_len;
    unsigned     flags;
    const char  *want;
    size_t       want_len;
};

struct bytes_arg {
    const char *s;
    size_t      len;
};

static void
produce_bytes(const void *arg, struct imap_quote_sink *sink)
{
    const struct bytes_arg *b = arg;
    /* Hand the bytes over in two pieces to exercise state across calls. */
    size_t half = b->len / 2;
    imap_quote_sink_put(sink, b->s, half);
    imap_quote_sink_put(sink, b->s + half, b->len - half);
}

static void
run(struct imap_out *out, const struct quote_case *c)
{
    struct bytes_arg arg = { .s = c->in, .len = c->in_len };
    switch (c->writer) {
    case W_STRING:
        imap_out_string(out, c->in, c->in_len, c->flags);
        break;
    case W_NSTRING:
        imap_out_nstring(out, c->in, c->in_len, c->flags);
        break;
    case W_ASTRING:
        imap_out_astring(out, c->in, c->in_len, c->flags);
        break;
    case W_PRODUCED:
        imap_out_produced(out, produce_bytes, &arg, c->flags & ~IMAP_QUOTE_HUMANS);
        break;
    case W_HUMANS:
        imap_out_produced(out, produce_bytes, &arg, c->flags | IMAP_QUOTE_HUMANS);
        break;
    case W_COUNT:
        CHECK(false);
        break;
    }
}

static const struct quote_case cases[] = {
    { W_STRING, L("hello"), 0, L("\"hello\"") },
    { W_STRING, L(""), 0, L("\"\"") },
    { W_STRING, L("a\"b\\c"), 0, L("\"a\\\"b\\\\c\"") },
    { W_STRING, L("a\r\nb"), 0, L("{4}\r\na\r\nb") },
    { W_STRING, L("a\nb"), 0, L("{3}\r\na\nb") },
    { W_STRING, L("caf\xc3\xa9"), 0, L("{5}\r\ncaf\xc3\xa9") },
    { W_STRING, L("caf\xc3\xa9"), IMAP_QUOTE_UTF8, L("\"caf\xc3\xa9\"") },
    { W_STRING, L("tab\there"), 0, L("\"tab\there\"") },
    { W_NSTRING, NULL, 0, 0, L("NIL") },
    { W_NSTRING, L("x"), 0, L("\"x\"") },
    { W_ASTRING, L("INBOX"), 0, L("INBOX") },
    { W_ASTRING, L("a]b"), 0, L("a]b") },
    { W_ASTRING, L("a b"), 0, L("\"a b\"") },
    { W_ASTRING, L(""), 0, L("\"\"") },
    { W_ASTRING, L("a{b"), 0, L("\"a{b\"") },
    { W_ASTRING, L("a%"), 0, L("\"a%\"") },
    { W_ASTRING, L("a\r"), 0, L("{2}\r\na\r") },
    /* For humans (Dovecot's imap_append_string_for_humans). */
    { W_HUMANS, L("plain"), 0, L("\"plain\"") },
    { W_HUMANS, L(""), 0, L("\"\"") },
    { W_HUMANS, L("   "), 0, L("\"\"") },
    { W_HUMANS, L("a b"), 0, L("\"a b\"") },
    { W_HUMANS, L(" a"), 0, L("{1}\r\na") },
    { W_HUMANS, L("a "), 0, L("{1}\r\na") },
    { W_HUMANS, L("a  b"), 0, L("{3}\r\na b") },
    { W_HUMANS, L("a\tb"), 0, L("{3}\r\na b") },
    { W_HUMANS, L("hi\r\n there "), 0, L("{8}\r\nhi there") },
    { W_HUMANS, L("say \"hi\""), 0, L("{8}\r\nsay \"hi\"") },
    { W_HUMANS, L("a\\b"), 0, L("{3}\r\na\\b") },
    { W_HUMANS, L("J\xc3\xb6rg"), 0, L("{5}\r\nJ\xc3\xb6rg") },
    { W_HUMANS, L("J\xc3\xb6rg"), IMAP_QUOTE_UTF8, L("\"J\xc3\xb6rg\"") },
    { W_PRODUCED, L("plain"), 0, L("\"plain\"") },
    { W_PRODUCED, L("a\"b"), 0, L("\"a\\\"b\"") },
    { W_PRODUCED, L("a\r\nb"), 0, L("{4}\r\na\r\nb") },
    /* NUL, never allowed in a string (literal included): a literal with
     * 0x80 in its place, whatever else the string holds or the flags. */
    { W_STRING, L("\0"), 0, L("{1}\r\n\x80") },
    { W_STRING, L("\0ab"), 0, L("{3}\r\n\x80" "ab") },
    { W_STRING, L("a\0b"), 0, L("{3}\r\na\x80" "b") },
    { W_STRING, L("ab\0"), 0, L("{3}\r\nab\x80") },
    { W_STRING, L("\0\0"), 0, L("{2}\r\n\x80\x80") },
    { W_STRING, L("a\0b"), IMAP_QUOTE_UTF8, L("{3}\r\na\x80" "b") },
    { W_STRING, L("\"\\\0"), 0, L("{3}\r\n\"\\\x80") },
    { W_STRING, L("a\r\n\0"), 0, L("{4}\r\na\r\n\x80") },
    { W_STRING, L("\xc3\xa9\0"), 0, L("{3}\r\n\xc3\xa9\x80") },
    { W_STRING, L("\0\xc3\xa9"), IMAP_QUOTE_UTF8, L("{3}\r\n\x80\xc3\xa9") },
    { W_STRING, L("0123456789\0"), 0, L("{11}\r\n0123456789\x80") },
    { W_NSTRING, L("\0"), 0, L("{1}\r\n\x80") },
    { W_NSTRING, L("x\0"), IMAP_QUOTE_UTF8, L("{2}\r\nx\x80") },
    { W_ASTRING, L("\0"), 0, L("{1}\r\n\x80") },
    { W_ASTRING, L("INBOX\0"), 0, L("{6}\r\nINBOX\x80") },
    { W_ASTRING, L("\0INBOX"), IMAP_QUOTE_UTF8, L("{6}\r\n\x80INBOX") },
    { W_PRODUCED, L("\0"), 0, L("{1}\r\n\x80") },
    { W_PRODUCED, L("\0a\"b"), 0, L("{4}\r\n\x80" "a\"b") },
    { W_PRODUCED, L("ab\0"), IMAP_QUOTE_UTF8, L("{3}\r\nab\x80") },
    { W_HUMANS, L("\0"), 0, L("{1}\r\n\x80") },
    { W_HUMANS, L("\0"), IMAP_QUOTE_UTF8, L("{1}\r\n\x80") },
    { W_HUMANS, L("\0ab"), 0, L("{3}\r\n\x80" "ab") },
    { W_HUMANS, L("a\0b"), IMAP_QUOTE_UTF8, L("{3}\r\na\x80" "b") },
    { W_HUMANS, L("ab\0"), 0, L("{3}\r\nab\x80") },
    { W_HUMANS, L(" \0 "), 0, L("{1}\r\n\x80") },
    { W_HUMANS, L("a \0\t\0"), 0, L("{5}\r\na \x80 \x80") },
    { W_HUMANS, L("\r\n\0\r\n"), 0, L("{1}\r\n\x80") },
    { W_HUMANS, L("\0\"\\"), 0, L("{3}\r\n\x80\"\\") },
};

static void
test_cases(void)
{
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct quote_case *c = &cases[i];
        size_t want_len = c->want_len;
        /* One token (not the produced forms): nothing or all of it. */
        bool is_token = c->writer == W_STRING || c->writer == W_NSTRING ||
                        c->writer == W_ASTRING;
        struct imap_out out;
        imap_out_init(&out, buf, sizeof(buf));
        run(&out, c);
        CHECK(!out.is_overflow);
        CHECK_BYTES(buf, out.len, c->want, want_len);
        /* Every smaller room: overflow, a prefix, nothing past the end. */
        for (size_t cap = 0; cap < want_len; cap++) {
            char small[256];
            memset(small, 0x5a, sizeof(small));
            imap_out_init(&out, small, cap);
            run(&out, c);
            CHECK(out.is_overflow);
            CHECK(out.len <= cap);
            CHECK(memcmp(small, c->want, out.len) == 0);
            CHECK(small[cap] == 0x5a);
            if (is_token) {
                CHECK(out.len == 0);
            }
        }
    }
}

/* Read one IMAP string (atom when is_atom_ok, quoted, or literal) that
 * must fill r[0..len): false when it is not well formed, holds a NUL, or
 * (without IMAP_QUOTE_UTF8) an 8-bit byte in a quoted string. The value
 * goes to value_out. */
static bool
read_string(const char *r, size_t len, unsigned flags, bool is_atom_ok, char *value_out,
            size_t *value_len_out)
{
    size_t n = 0;
    if (len >= 2 && r[0] == '"' && r[len - 1] == '"') {
        for (size_t i = 1; i + 1 < len; i++) {
            unsigned char c = (unsigned char)r[i];
            if (c == '\\') {
                i++;
                if (i + 1 >= len || (r[i] != '"' && r[i] != '\\')) {
                    return false;
                }
                c = (unsigned char)r[i];
            } else if (c == '"' || c == '\0' || c == '\r' || c == '\n') {
                return false;
            } else if (c >= 0x80 && (flags & IMAP_QUOTE_UTF8) == 0) {
                return false;
            }
            value_out[n++] = (char)c;
        }
    } else if (len >= 1 && r[0] == '{') {
        size_t i = 1;
        size_t lit = 0;
        while (i < len && r[i] >= '0' && r[i] <= '9') {
            lit = lit * 10 + (size_t)(r[i] - '0');
            i++;
        }
        if (i == 1 || len - i < 3 || memcmp(r + i, "}\r\n", 3) != 0 || len - i - 3 != lit ||
            memchr(r + i + 3, '\0', lit) != NULL) {
            return false;
        }
        memcpy(value_out, r + i + 3, lit);
        n = lit;
    } else if (is_atom_ok && len > 0) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)r[i];
            if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\", c) != NULL) {
                return false;
            }
        }
        memcpy(value_out, r, len);
        n = len;
    } else {
        return false;
    }
    *value_len_out = n;
    return true;
}

/* Every string of 0..4 bytes over a small alphabet, every writer, both
 * flag sets: one well-formed string without NUL; the plain writers give
 * back the input with each NUL as 0x80, the humans form has the length
 * imap_quote_produced_len() announces. */
static void
test_nul_exhaustive(void)
{
    static const char alphabet[] = { '\0', '\r', '"', (char)0x80, ' ', 'a' };
    const size_t symbols = sizeof(alphabet);
    unsigned long bad = 0;
    unsigned long runs = 0;
    for (size_t len = 0; len <= 4; len++) {
        size_t count = 1;
        for (size_t k = 0; k < len; k++) {
            count *= symbols;
        }
        for (size_t code = 0; code < count; code++) {
            char in[4];
            char want[4];
            size_t v = code;
            for (size_t k = 0; k < len; k++) {
                in[k] = alphabet[v % symbols];
                want[k] = in[k] == '\0' ? (char)IMAP_QUOTE_NUL_REPLACEMENT : in[k];
                v /= symbols;
            }
            for (int w = 0; w < W_COUNT; w++) {
                for (unsigned flags = 0; flags <= IMAP_QUOTE_UTF8; flags += IMAP_QUOTE_UTF8) {
                    struct quote_case c = {
                        .writer = (enum writer)w, .in = in, .in_len = len, .flags = flags,
                    };
                    char buf[64];
                    struct imap_out out;
                    imap_out_init(&out, buf, sizeof(buf));
                    run(&out, &c);
                    char value[64];
                    size_t value_len = 0;
                    bool is_ok = !out.is_overflow && memchr(buf, '\0', out.len) == NULL &&
                                 read_string(buf, out.len, flags, w == W_ASTRING, value,
                                             &value_len);
                    if (is_ok && w == W_HUMANS) {
                        struct bytes_arg arg = { .s = in, .len = len };
                        is_ok = value_len == imap_quote_produced_len(
                                                 produce_bytes, &arg, flags | IMAP_QUOTE_HUMANS) &&
                                memchr(value, '\r', value_len) == NULL;
                    } else if (is_ok) {
                        is_ok = value_len == len && memcmp(value, want, len) == 0;
                    }
                    runs++;
                    if (!is_ok) {
                        bad++;
                        if (bad <= 5) {
                            fprintf(stderr, "writer %d flags %u: ", w, flags);
                            unit_print_escaped((const unsigned char *)buf, out.len);
                            fputc('\n', stderr);
                        }
                    }
                }
            }
        }
    }
    CHECK(bad == 0);
    CHECK(runs == 2 * W_COUNT * (1 + 6 + 36 + 216 + 1296));
}

static void
test_out(void)
{
    char buf[8];
    struct imap_out out;
    imap_out_init(&out, buf, sizeof(buf));
    imap_out_uint(&out, 0);
    imap_out_char(&out, ' ');
    imap_out_uint(&out, 123456);
    CHECK(!out.is_overflow);
    CHECK_BYTES(buf, out.len, "0 123456", 8);
    imap_out_char(&out, 'x');
    CHECK(out.is_overflow);
    CHECK(out.len == 8);
    /* Sticky: a later write that would fit is dropped too. */
    imap_out_init(&out, buf, sizeof(buf));
    imap_out_cstr(&out, "123456789");
    CHECK(out.is_overflow);
    imap_out_cstr(&out, "1");
    CHECK(out.len == 0);
    /* A dry run with no buffer. */
    imap_out_init(&out, NULL, 0);
    imap_out_cstr(&out, "");
    CHECK(!out.is_overflow);
    imap_out_cstr(&out, "a");
    CHECK(out.is_overflow);
    char big[32];
    imap_out_init(&out, big, sizeof(big));
    imap_out_uint(&out, UINT64_MAX);
    CHECK_STR((imap_out_char(&out, '\0'), big), "18446744073709551615");
    CHECK(imap_quote_is_quotable("abc", 3, 0));
    CHECK(!imap_quote_is_quotable("a\rc", 3, 0));
    CHECK(!imap_quote_is_quotable("\x80", 1, 0));
    CHECK(imap_quote_is_quotable("\x80", 1, IMAP_QUOTE_UTF8));
    CHECK(!imap_quote_is_quotable("\0", 1, 0));
    CHECK(!imap_quote_is_quotable("a\0", 2, IMAP_QUOTE_UTF8));
    /* A NUL counts one byte in the produced length (0x80 takes its place). */
    struct bytes_arg arg = { .s = " a\0 b ", .len = 6 };
    CHECK(imap_quote_produced_len(produce_bytes, &arg, IMAP_QUOTE_HUMANS) == 4);
    CHECK(imap_quote_produced_len(produce_bytes, &arg, 0) == 6);
}

int
main(void)
{
    test_cases();
    test_nul_exhaustive();
    test_out();
    UNIT_DONE();
}
