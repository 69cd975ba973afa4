/*
 * tests/unit/test_imap_envelope.c - ENVELOPE and RFC 5322 address lists.
 *
 * fixtures/mime/addresses.txt holds To: values and the ENVELOPE Dovecot
 * 2.3.19.1 gave for "From: f@f.f / To: <value>" (doveadm fetch
 * imap.envelope); every one must come out byte for byte the same, except
 * the few listed in fixtures/mime/README as deliberate differences (those
 * lines carry our output and a "# ours" note). Table cases then cover the
 * other fields: defaults of Sender and Reply-To, repeated fields,
 * folding, subjects for humans, and overflow of a small buffer. Header
 * values holding NUL (no IMAP string may) must come out with 0x80 in its
 * place, in a literal: table cases per field, then a NUL put at every
 * position of a full header block.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_envelope.h"
#include "proto/imap/imap_quote.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

static char file_buf[65536];
static char out_buf[65536];

/* Copy src into dst replacing each "<name>" marker with its bytes. */
static size_t
unescape(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < cap;) {
        if (len - i >= 6 && memcmp(src + i, "<CRLF>", 6) == 0) {
            memcpy(dst + n, "\r\n", 2);
            n += 2;
            i += 6;
        } else if (len - i >= 6 && memcmp(src + i, "<FOLD>", 6) == 0) {
            memcpy(dst + n, "\r\n\t", 3);
            n += 3;
            i += 6;
        } else {
            dst[n++] = src[i++];
        }
    }
    return n;
}

static void
check_envelope(const char *hdr, size_t hdr_len, const char *want, size_t want_len)
{
    char *copy = malloc(hdr_len > 0 ? hdr_len : 1);
    memcpy(copy, hdr, hdr_len);
    struct imap_out out;
    imap_out_init(&out, out_buf, sizeof(out_buf));
    imap_envelope_write(&out, copy, hdr_len, 0);
    CHECK(!out.is_overflow);
    CHECK_BYTES(out_buf, out.len, want, want_len);
    /* Smaller rooms report overflow and stay inside. */
    for (size_t cap = 0; cap < out.len; cap += 7) {
        char small[1024];
        if (cap + 1 > sizeof(small)) {
            break;
        }
        small[cap] = 0x5a;
        struct imap_out o2;
        imap_out_init(&o2, small, cap);
        imap_envelope_write(&o2, copy, hdr_len, 0);
        CHECK(o2.is_overflow);
        CHECK(o2.len <= cap);
        CHECK(small[cap] == 0x5a);
    }
    free(copy);
}

static void
test_dovecot_addresses(void)
{
    size_t len = FIXTURE_READ("mime/addresses.txt", file_buf);
    size_t pos = 0;
    size_t count = 0;
    while (pos < len) {
        char *to = file_buf + pos;
        char *to_end = memchr(to, '\n', len - pos);
        if (to_end == NULL) {
            break;
        }
        char *env = to_end + 1;
        char *env_end = memchr(env, '\n', len - (size_t)(env - file_buf));
        if (env_end == NULL) {
            break;
        }
        pos = (size_t)(env_end - file_buf) + 1;
        CHECK(memcmp(to, "TO: ", 4) == 0);
        CHECK(memcmp(env, "ENV: ", 5) == 0);
        char hdr[2048];
        size_t n = 0;
        memcpy(hdr, "From: f@f.f\r\nTo: ", 17);
        n = 17;
        n += unescape(hdr + n, sizeof(hdr) - n - 8, to + 4, (size_t)(to_end - to) - 4);
        memcpy(hdr + n, "\r\n\r\n", 4);
        n += 4;
        char want[2048];
        size_t want_len = unescape(want, sizeof(want), env + 5, (size_t)(env_end - env) - 5);
        size_t failed_before = unit_checks_failed;
        check_envelope(hdr, n, want, want_len);
        if (unit_checks_failed != failed_before) {
            fprintf(stderr, "  address case: %.*s\n", (int)(to_end - to), to);
        }
        count++;
    }
    CHECK(count >= 40);
}

#define S(s) (s), (sizeof(s) - 1)

static void
test_fields(void)
{
    /* No header at all. */
    check_envelope(S(""), S("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"));
    /* Sender and Reply-To default to From; an empty one does too. */
    check_envelope(S("From: a@b\r\nSender:\r\nReply-To: r@s\r\n\r\n"),
                   S("(NIL NIL ((NIL NIL \"a\" \"b\")) ((NIL NIL \"a\" \"b\"))"
                     " ((NIL NIL \"r\" \"s\")) NIL NIL NIL NIL NIL)"));
    /* The last occurrence counts; names are case-insensitive; address
     * fields add up (Dovecot 2.3.19.1 gives exactly this). */
    check_envelope(S("SUBJECT: one\r\nsubject: two\r\nmessage-id: <m@x>\r\n"
                     "To: a@b\r\nto: c@d\r\n\r\n"),
                   S("(NIL \"two\" NIL NIL NIL ((NIL NIL \"a\" \"b\")(NIL NIL \"c\" \"d\"))"
                     " NIL NIL NIL \"<m@x>\")"));
    /* Folding: removed; for humans a literal, elsewhere quoted. */
    check_envelope(S("Subject: a\r\n b\r\nDate: x\r\n\ty\r\nIn-Reply-To: <a@b>\r\n <c@d>\r\n\r\n"),
                   S("(\"x\ty\" {3}\r\na b NIL NIL NIL NIL NIL NIL \"<a@b> <c@d>\" NIL)"));
    /* Header without the empty line, and a bare-LF header. */
    check_envelope(S("Subject: s"), S("(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)"));
    check_envelope(S("Subject: s\nTo: t@u\n\n"),
                   S("(NIL \"s\" NIL NIL NIL ((NIL NIL \"t\" \"u\")) NIL NIL NIL NIL)"));
    /* A line without a colon and a leading continuation are skipped. */
    check_envelope(S(" cont\r\njunk\r\nSubject: s\r\n\r\n"),
                   S("(NIL \"s\" NIL NIL NIL NIL NIL NIL NIL NIL)"));
    /* 8-bit: literal, or quoted when UTF-8 is allowed. */
    check_envelope(S("Subject: \xc3\xa9\r\n\r\n"),
                   S("(NIL {2}\r\n\xc3\xa9 NIL NIL NIL NIL NIL NIL NIL NIL)"));
    struct imap_out out;
    imap_out_init(&out, out_buf, sizeof(out_buf));
    imap_envelope_write(&out, S("Subject: \xc3\xa9\r\n\r\n"), IMAP_QUOTE_UTF8);
    CHECK_STR((imap_out_char(&out, '\0'), out_buf),
              "(NIL \"\xc3\xa9\" NIL NIL NIL NIL NIL NIL NIL NIL)");
    /* The address list writer alone. */
    imap_out_init(&out, out_buf, sizeof(out_buf));
    CHECK(imap_envelope_write_addresses(&out, S("a@b, G: c@d;"), 0) == 4);
    CHECK_STR((imap_out_char(&out, '\0'), out_buf),
              "((NIL NIL \"a\" \"b\")(NIL NIL \"G\" NIL)(NIL NIL \"c\" \"d\")(NIL NIL NIL NIL))");
    imap_out_init(&out, out_buf, sizeof(out_buf));
    CHECK(imap_envelope_write_addresses(&out, S(""), 0) == 0);
    CHECK_STR((imap_out_char(&out, '\0'), out_buf), "NIL");
}

static void
check_out(const struct imap_out *out, const char *want, size_t want_len)
{
    CHECK(!out->is_overflow);
    CHECK_BYTES(out->buf, out->len, want, want_len);
}

/* Header values with NUL: each NUL is sent as 0x80 inside a literal, in
 * every field, also with UTF8=ACCEPT (0x80 is not UTF-8, so never in a
 * quoted string). */
static void
test_nul(void)
{
    /* The fuzz finding imap_fetch-1: a display name "\0" and a subject
     * "a\0b". The quoted string alone is a local part (no '<'). */
    check_envelope(S("From:\"\0\"\r\nSubject: a\0b\r\n\r\n"),
                   S("(NIL {3}\r\na\x80" "b ((NIL NIL {1}\r\n\x80 \"MISSING_DOMAIN\"))"
                     " ((NIL NIL {1}\r\n\x80 \"MISSING_DOMAIN\"))"
                     " ((NIL NIL {1}\r\n\x80 \"MISSING_DOMAIN\")) NIL NIL NIL NIL NIL)"));
    check_envelope(S("From: \"\0\" <a@b>\r\n\r\n"),
                   S("(NIL NIL (({1}\r\n\x80 NIL \"a\" \"b\")) (({1}\r\n\x80 NIL \"a\" \"b\"))"
                     " (({1}\r\n\x80 NIL \"a\" \"b\")) NIL NIL NIL NIL NIL)"));
    /* Subject (for humans): NUL at the start, middle, end, alone. */
    check_envelope(S("Subject: \0\r\n\r\n"),
                   S("(NIL {1}\r\n\x80 NIL NIL NIL NIL NIL NIL NIL NIL)"));
    check_envelope(S("Subject: \0abc\r\n\r\n"),
                   S("(NIL {4}\r\n\x80" "abc NIL NIL NIL NIL NIL NIL NIL NIL)"));
    check_envelope(S("Subject: ab  \0 c\r\n\r\n"),
                   S("(NIL {6}\r\nab \x80 c NIL NIL NIL NIL NIL NIL NIL NIL)"));
    check_envelope(S("Subject: abc\0\r\n\r\n"),
                   S("(NIL {4}\r\nabc\x80 NIL NIL NIL NIL NIL NIL NIL NIL)"));
    /* Date, In-Reply-To, Message-ID (quoted candidates otherwise). */
    check_envelope(S("Date: \0Mon\r\nIn-Reply-To: <a@b>\0\r\nMessage-ID: <m\0@x>\r\n\r\n"),
                   S("({4}\r\n\x80Mon NIL NIL NIL NIL NIL NIL NIL {6}\r\n<a@b>\x80"
                     " {6}\r\n<m\x80@x>)"));
    /* A literal candidate anyway (CR LF kept out, 8-bit byte) with NUL. */
    check_envelope(S("Message-ID: <\xc3\xa9\0>\r\n\r\n"),
                   S("(NIL NIL NIL NIL NIL NIL NIL NIL NIL {5}\r\n<\xc3\xa9\x80>)"));
    /* Display name, quoted local part, domain literal with NUL. */
    check_envelope(S("To: \"x\0y\" <a@b>, \"l\0\"@h, c@[1\0]\r\n\r\n"),
                   S("(NIL NIL NIL NIL NIL (({3}\r\nx\x80y NIL \"a\" \"b\")"
                     "(NIL NIL {2}\r\nl\x80 \"h\")(NIL NIL \"c\" {4}\r\n[1\x80]))"
                     " NIL NIL NIL NIL)"));
    struct imap_out out;
    imap_out_init(&out, out_buf, sizeof(out_buf));
    CHECK(imap_envelope_write_addresses(&out, S("\"x\0y\" <a@b>, \"l\0\"@h, c@[1\0]"), 0) ==
          3);
    check_out(&out, S("(({3}\r\nx\x80y NIL \"a\" \"b\")(NIL NIL {2}\r\nl\x80 \"h\")"
                      "(NIL NIL \"c\" {4}\r\n[1\x80]))"));
    /* UTF8=ACCEPT: 8-bit text is quoted, but not when it holds NUL. */
    imap_out_init(&out, out_buf, sizeof(out_buf));
    imap_envelope_write(&out, S("Subject: \xc3\xa9\0\r\nMessage-ID: \0\r\n\r\n"),
                        IMAP_QUOTE_UTF8);
    check_out(&out, S("(NIL {3}\r\n\xc3\xa9\x80 NIL NIL NIL NIL NIL NIL NIL {1}\r\n\x80)"));

    /* A NUL at every position of a header block with every field: the
     * output never holds NUL, with either flag set. */
    static const char full[] =
        "Date: Tue, 3 Mar 2026 23:59:59 +1300\r\n"
        "Subject: =?UTF-8?Q?x?= hello  \"world\"\r\n"
        "From: \"J\\\"o\" (c) <j.o@ex.de>\r\n"
        "Sender: s@t\r\n"
        "Reply-To: G: a@b, <@r:c@[1.2]>;\r\n"
        "To: x y <z@w>, bare@host (Name)\r\n"
        "Cc: \"q\"@h\r\nBcc: b@c\r\n"
        "In-Reply-To: <i@r>\r\nMessage-ID: <m@id>\r\n\r\n";
    char hdr[sizeof(full)];
    unsigned long nul_out = 0;
    unsigned long overflow = 0;
    for (size_t at = 0; at + 1 < sizeof(full); at++) {
        memcpy(hdr, full, sizeof(full));
        hdr[at] = '\0';
        for (unsigned flags = 0; flags <= IMAP_QUOTE_UTF8; flags += IMAP_QUOTE_UTF8) {
            imap_out_init(&out, out_buf, sizeof(out_buf));
            imap_envelope_write(&out, hdr, sizeof(full) - 1, flags);
            overflow += out.is_overflow;
            nul_out += memchr(out_buf, '\0', out.len) != NULL;
        }
    }
    CHECK(overflow == 0);
    CHECK(nul_out == 0);
}

int
main(void)
{
    test_dovecot_addresses();
    test_fields();
    test_nul();
    UNIT_DONE();
}
