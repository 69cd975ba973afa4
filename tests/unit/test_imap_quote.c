/*
 * tests/unit/test_imap_quote.c - IMAP strings into a bounded buffer.
 *
 * Table cases for quoted strings, literals, NIL, atoms and the "for
 * humans" form (Dovecot's, checked against doveadm output in the MIME
 * fixtures); then every writer is run into every smaller room: it must
 * report overflow, write nothing past the room and leave a prefix.
 */
#include <stdbool.h>
#include <string.h>

#include "proto/imap/imap_quote.h"
#include "tests/unit/unit.h"

#define L(s) (s), (sizeof(s) - 1)

enum writer { W_STRING, W_NSTRING, W_ASTRING, W_HUMANS };

struct quote_case {
    enum writer  writer;
    const char  *in;
    size_t       in_len;
    unsigned     flags;
    const char  *want;
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
    case W_HUMANS:
        imap_out_produced(out, produce_bytes, &arg, c->flags | IMAP_QUOTE_HUMANS);
        break;
    }
}

static const struct quote_case cases[] = {
    { W_STRING, L("hello"), 0, "\"hello\"" },
    { W_STRING, L(""), 0, "\"\"" },
    { W_STRING, L("a\"b\\c"), 0, "\"a\\\"b\\\\c\"" },
    { W_STRING, L("a\r\nb"), 0, "{4}\r\na\r\nb" },
    { W_STRING, L("a\nb"), 0, "{3}\r\na\nb" },
    { W_STRING, L("a\0b"), 0, "{3}\r\na\0b" },
    { W_STRING, L("caf\xc3\xa9"), 0, "{5}\r\ncaf\xc3\xa9" },
    { W_STRING, L("caf\xc3\xa9"), IMAP_QUOTE_UTF8, "\"caf\xc3\xa9\"" },
    { W_STRING, L("tab\there"), 0, "\"tab\there\"" },
    { W_NSTRING, NULL, 0, 0, "NIL" },
    { W_NSTRING, L("x"), 0, "\"x\"" },
    { W_ASTRING, L("INBOX"), 0, "INBOX" },
    { W_ASTRING, L("a]b"), 0, "a]b" },
    { W_ASTRING, L("a b"), 0, "\"a b\"" },
    { W_ASTRING, L(""), 0, "\"\"" },
    { W_ASTRING, L("a{b"), 0, "\"a{b\"" },
    { W_ASTRING, L("a%"), 0, "\"a%\"" },
    { W_ASTRING, L("a\r"), 0, "{2}\r\na\r" },
    /* For humans (Dovecot's imap_append_string_for_humans). */
    { W_HUMANS, L("plain"), 0, "\"plain\"" },
    { W_HUMANS, L(""), 0, "\"\"" },
    { W_HUMANS, L("   "), 0, "\"\"" },
    { W_HUMANS, L("a b"), 0, "\"a b\"" },
    { W_HUMANS, L(" a"), 0, "{1}\r\na" },
    { W_HUMANS, L("a "), 0, "{1}\r\na" },
    { W_HUMANS, L("a  b"), 0, "{3}\r\na b" },
    { W_HUMANS, L("a\tb"), 0, "{3}\r\na b" },
    { W_HUMANS, L("hi\r\n there "), 0, "{8}\r\nhi there" },
    { W_HUMANS, L("say \"hi\""), 0, "{8}\r\nsay \"hi\"" },
    { W_HUMANS, L("a\\b"), 0, "{3}\r\na\\b" },
    { W_HUMANS, L("J\xc3\xb6rg"), 0, "{5}\r\nJ\xc3\xb6rg" },
    { W_HUMANS, L("J\xc3\xb6rg"), IMAP_QUOTE_UTF8, "\"J\xc3\xb6rg\"" },
};

static void
test_cases(void)
{
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct quote_case *c = &cases[i];
        size_t want_len = c->writer == W_STRING && c->in_len == 3 && c->in[1] == '\0'
                              ? 8
                              : strlen(c->want);
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
        }
    }
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
}

int
main(void)
{
    test_cases();
    test_out();
    UNIT_DONE();
}
