/*
 * tests/unit/test_imap_envelope.c - ENVELOPE and RFC 5322 address lists.
 *
 * fixtures/mime/addresses.txt holds To: values and the ENVELOPE Dovecot
 * 2.3.19.1 gave for "From: f@f.f / To: <value>" (doveadm fetch
 * imap.envelope); every one must come out byte for byte the same, except
 * the few listed in fixtures/mime/README as deliberate differences (those
 * lines carry our output and a "# ours" note). Table cases then cover the
 * other fields: defaults of Sender and Reply-To, repeated fields,
 * folding, subjects for humans, and overflow of a small buffer.
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

int
main(void)
{
    test_dovecot_addresses();
    test_fields();
    UNIT_DONE();
}
