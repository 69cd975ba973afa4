/*
 * tests/unit/test_sieve_vacation.c - what follows a Sieve "vacation"
 * action (filters/sieve_vacation): the rules of RFC 5230 4.5/4.6 and RFC
 * 3834 on whether to reply (null sender, system addresses, the user's own
 * address, Auto-Submitted, list headers, Precedence, the user not among
 * the recipients: address lists with display names, groups, comments,
 * routes and folding), the tracking key (a fixed SHA-256 vector, sender
 * case, no ambiguity between fields), and the reply (every header, RFC
 * 2047 subjects and names, header injection, References trimming,
 * quoted-printable for long lines, :mime entities good and bad, and the
 * size bound at max - 1, max, max + 1).
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_vacation.h"
#include "tests/unit/unit.h"

int main(void);

#define BASE_HEADER                                                                  \
    "From: Bob <bob@example.org>\r\n"                                                \
    "To: Alice <alice@example.com>\r\n"                                              \
    "Subject: lunch\r\n"                                                             \
    "Message-ID: <m1@example.org>\r\n"

static struct sieve_message
message_with(const char *header, const char *sender)
{
    struct sieve_message m;
    memset(&m, 0, sizeof(m));
    m.header = header;
    m.header_len = strlen(header);
    m.envelope_from = sender;
    m.user = "alice@example.com";
    return m;
}

static bool
replies(const char *header, const char *sender, const struct sieve_vacation *vacation)
{
    struct sieve_message m = message_with(header, sender);
    const char *why = "unset";
    bool is_reply = sieve_vacation_should_reply(&m, vacation, &why);
    if (is_reply) {
        CHECK(why == NULL);
    } else {
        CHECK(why != NULL && why[0] != '\0');
    }
    return is_reply;
}

static void
test_should_reply(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    const char *base = BASE_HEADER "\r\n";

    CHECK(replies(base, "bob@example.org", &v));
    /* Senders never answered. */
    CHECK(!replies(base, "", &v));
    CHECK(!replies(base, NULL, &v));
    CHECK(!replies(base, "MAILER-DAEMON@example.org", &v));
    CHECK(!replies(base, "mailer-daemon", &v));
    CHECK(!replies(base, "owner-list@example.org", &v));
    CHECK(!replies(base, "list-request@example.org", &v));
    CHECK(!replies(base, "LISTSERV@example.org", &v));
    CHECK(!replies(base, "majordomo@example.org", &v));
    CHECK(replies(base, "daemon@example.org", &v));
    CHECK(replies(base, "request@example.org", &v));
    CHECK(replies(base, "owner@example.org", &v));
    /* The user's own address, in any case, and :addresses. */
    CHECK(!replies(base, "Alice@Example.COM", &v));
    v.addresses[0] = "alias@example.com";
    v.address_count = 1;
    CHECK(!replies(base, "alias@example.com", &v));
    v.address_count = 0;
    /* reply_to (the interpreter's copy of the sender) wins over the envelope. */
    v.reply_to = "";
    CHECK(!replies(base, "bob@example.org", &v));
    v.reply_to = NULL;

    /* RFC 3834: Auto-Submitted other than "no". */
    CHECK(!replies(BASE_HEADER "Auto-Submitted: auto-replied\r\n\r\n", "bob@example.org", &v));
    CHECK(!replies(BASE_HEADER "Auto-Submitted: auto-generated\r\n\r\n", "bob@example.org", &v));
    CHECK(!replies(BASE_HEADER "auto-submitted: Auto-Replied (vacation)\r\n\r\n",
                   "bob@example.org", &v));
    CHECK(replies(BASE_HEADER "Auto-Submitted: no\r\n\r\n", "bob@example.org", &v));
    CHECK(replies(BASE_HEADER "Auto-Submitted: (why) No (comment)\r\n\r\n", "bob@example.org",
                  &v));
    CHECK(!replies(BASE_HEADER "Auto-Submitted:\r\n\r\n", "bob@example.org", &v));
    /* Lists. */
    static const char *const lists[] = {"List-Id", "List-Owner", "List-Subscribe", "List-Post",
                                        "List-Unsubscribe", "List-Help", "List-Archive"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char h[512];
        (void)snprintf(h, sizeof(h), "%s%s: <x.example.org>\r\n\r\n", BASE_HEADER, lists[i]);
        CHECK(!replies(h, "bob@example.org", &v));
    }
    CHECK(!replies(BASE_HEADER "Precedence: bulk\r\n\r\n", "bob@example.org", &v));
    CHECK(!replies(BASE_HEADER "Precedence: LIST\r\n\r\n", "bob@example.org", &v));
    CHECK(!replies(BASE_HEADER "Precedence: junk\r\n\r\n", "bob@example.org", &v));
    CHECK(replies(BASE_HEADER "Precedence: first-class\r\n\r\n", "bob@example.org", &v));
    /* A list header after the blank line is body, not header. */
    CHECK(replies(BASE_HEADER "\r\nList-Id: <x>\r\n", "bob@example.org", &v));
}

static void
test_addressed(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    static const struct {
        const char *header;
        bool is_reply;
    } cases[] = {
        {"To: carol@example.com\r\n\r\n", false},
        {"To: carol@example.com\r\nCc: alice@example.com\r\n\r\n", true},
        {"Bcc: alice@example.com\r\n\r\n", true},
        {"Resent-To: alice@example.com\r\n\r\n", true},
        {"Resent-Cc: <alice@example.com>\r\n\r\n", true},
        {"Resent-Bcc: alice@example.com\r\n\r\n", true},
        {"From: alice@example.com\r\nReply-To: alice@example.com\r\n\r\n", false},
        {"To: ALICE@EXAMPLE.COM\r\n\r\n", true},
        {"To: \"alice@example.com\" <eve@example.net>\r\n\r\n", false}, /* a display name */
        {"To: \"Smith, Alice\" <alice@example.com>\r\n\r\n", true},
        {"To: friends: bob@example.org, alice@example.com;\r\n\r\n", true},
        {"To: undisclosed-recipients:;\r\n\r\n", false},
        {"To: alice@example.com (Alice)\r\n\r\n", true},
        {"To: (alice@example.com) eve@example.net\r\n\r\n", false},
        {"To: (a (nested) comment) alice@example.com\r\n\r\n", true},
        {"To: a@example.net,\r\n\talice@example.com\r\n\r\n", true},
        {"To: <@relay.example.net:alice@example.com>\r\n\r\n", true},
        {"To: alice@example.com.evil\r\n\r\n", false},
        {"To: xalice@example.com\r\n\r\n", false},
        {"To: alice@example.com\r\n", true},             /* no blank line */
        {"To: alice@example.com", true},                 /* not even a line end */
        {"To: alice@example.com\n\n", true},             /* LF only */
        {"X: y\r\nbroken line\r\nTo: alice@example.com\r\n\r\n", false}, /* header ends */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = replies(cases[i].header, "bob@example.org", &v);
        if (got != cases[i].is_reply) {
            (void)fprintf(stderr, "case %zu: %s\n", i, cases[i].header);
        }
        CHECK(got == cases[i].is_reply);
    }
    /* :addresses count as the user's; without a user they are all there is. */
    v.addresses[0] = "a.smith@example.com";
    v.addresses[1] = "alice@old.example.com";
    v.address_count = 2;
    CHECK(replies("To: alice@old.example.com\r\n\r\n", "bob@example.org", &v));
    struct sieve_message m = message_with("To: a.smith@example.com\r\n\r\n", "bob@example.org");
    m.user = NULL;
    const char *why = NULL;
    CHECK(sieve_vacation_should_reply(&m, &v, &why));
    v.address_count = 0;
    CHECK(!sieve_vacation_should_reply(&m, &v, &why));
    CHECK(why != NULL);

    /* Words longer than an address can be never match (and do not overrun). */
    char big[2048];
    memset(big, 'a', sizeof(big));
    memcpy(big, "To: ", 4);
    memcpy(big + sizeof(big) - 24, "alice@example.com\r\n\r\n", 21);
    big[sizeof(big) - 3] = '\0';
    CHECK(!replies(big, "bob@example.org", &v));
    /* An address of SIEVE_VACATION_ADDRESS_BYTES_MAX bytes still matches;
     * one byte more never does. */
    for (size_t len = SIEVE_VACATION_ADDRESS_BYTES_MAX - 1;
         len <= SIEVE_VACATION_ADDRESS_BYTES_MAX + 1; len++) {
        char user[SIEVE_VACATION_ADDRESS_BYTES_MAX + 2];
        size_t local = len - strlen("@example.com");
        memset(user, 'u', local);
        memcpy(user + local, "@example.com", strlen("@example.com") + 1);
        CHECK(strlen(user) == len);
        char h[SIEVE_VACATION_ADDRESS_BYTES_MAX + 64];
        (void)snprintf(h, sizeof(h), "To: x@y, <%s>\r\n\r\n", user);
        struct sieve_message um = message_with(h, "bob@example.org");
        um.user = user;
        const char *uwhy = NULL;
        CHECK(sieve_vacation_should_reply(&um, &v, &uwhy) ==
              (len <= SIEVE_VACATION_ADDRESS_BYTES_MAX));
    }
    /* Comments nest 32 deep at most: deeper gives up (no reply). */
    char deep[256];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "To: ");
    for (size_t i = 0; i < 33; i++) {
        deep[n++] = '(';
    }
    for (size_t i = 0; i < 33; i++) {
        deep[n++] = ')';
    }
    (void)snprintf(deep + n, sizeof(deep) - n, " alice@example.com\r\n\r\n");
    CHECK(!replies(deep, "bob@example.org", &v));
    memmove(deep + 4, deep + 5, strlen(deep + 5) + 1); /* 32 '(' */
    char *last = strrchr(deep, ')');
    memmove(last, last + 1, strlen(last + 1) + 1);      /* 32 ')' */
    CHECK(replies(deep, "bob@example.org", &v));
}

static void
test_key(void)
{
    char key[SIEVE_VACATION_KEY_BYTES];
    char other[SIEVE_VACATION_KEY_BYTES];
    sieve_vacation_key("alice@example.com", "bob@example.org", "handle1", key);
    CHECK_STR(key, "vacation:76f4e558a7aafcd91cc6cd8f45891fd54880436522f58e583f0cbf007753f9d6");
    CHECK(strlen(key) == 73);
    sieve_vacation_key("alice@example.com", "Bob@Example.ORG", "handle1", other);
    CHECK_STR(other, key); /* the sender in any case */
    sieve_vacation_key("alice@example.com", "bob@example.org", "handle2", other);
    CHECK(strcmp(other, key) != 0);
    sieve_vacation_key("carol@example.com", "bob@example.org", "handle1", other);
    CHECK(strcmp(other, key) != 0);
    /* Field boundaries matter: ("ab", "c") is not ("a", "bc"). */
    sieve_vacation_key("ab", "c", "", key);
    sieve_vacation_key("a", "bc", "", other);
    CHECK(strcmp(other, key) != 0);
    sieve_vacation_key(NULL, NULL, NULL, key);
    sieve_vacation_key("", "", "", other);
    CHECK_STR(other, key);
    /* A sender longer than the lower-casing chunk. */
    char long_sender[1000];
    memset(long_sender, 'B', sizeof(long_sender) - 1);
    long_sender[sizeof(long_sender) - 1] = '\0';
    sieve_vacation_key("u", long_sender, "h", key);
    for (size_t i = 0; i + 1 < sizeof(long_sender); i++) {
        long_sender[i] = 'b';
    }
    sieve_vacation_key("u", long_sender, "h", other);
    CHECK_STR(other, key);
}

/* The value of the first field called name in the reply's header block,
 * unfolded lines joined with "\r\n" kept; "" when absent. */
static const char *
reply_field(const char *reply, size_t len, const char *name)
{
    static char value[4096];
    value[0] = '\0';
    size_t name_len = strlen(name);
    const char *end = memmem(reply, len, "\r\n\r\n", 4);
    size_t header_len = end != NULL ? (size_t)(end - reply) + 2 : len;
    size_t pos = 0;
    while (pos < header_len) {
        const char *line_end = memmem(reply + pos, header_len - pos, "\r\n", 2);
        size_t next = line_end != NULL ? (size_t)(line_end - reply) + 2 : header_len;
        if (next - pos > name_len + 1 && strncasecmp(reply + pos, name, name_len) == 0 &&
            reply[pos + name_len] == ':') {
            size_t v = pos + name_len + 1;
            while (v < header_len && reply[v] == ' ') {
                v++;
            }
            size_t stop = next;
            while (stop < header_len && (reply[stop] == ' ' || reply[stop] == '\t')) {
                const char *le = memmem(reply + stop, header_len - stop, "\r\n", 2);
                stop = le != NULL ? (size_t)(le - reply) + 2 : header_len;
            }
            size_t n = stop - 2 - v;
            if (n >= sizeof(value)) {
                n = sizeof(value) - 1;
            }
            memcpy(value, reply + v, n);
            value[n] = '\0';
            return value;
        }
        pos = next;
    }
    return value;
}

/* Every line ends in CRLF, none is longer than 998, no bare CR or LF. */
static void
check_lines(const char *reply, size_t len)
{
    size_t run = 0;
    bool is_ok = true;
    for (size_t i = 0; i < len; i++) {
        if (reply[i] == '\r') {
            is_ok = is_ok && i + 1 < len && reply[i + 1] == '\n';
            i++;
            run = 0;
            continue;
        }
        is_ok = is_ok && reply[i] != '\n';
        run++;
        is_ok = is_ok && run <= 998;
    }
    CHECK(is_ok);
    CHECK(len >= 2 && reply[len - 2] == '\r' && reply[len - 1] == '\n');
}

static char *
compose(const char *header, const struct sieve_vacation *v, size_t *len_out, int *rc_out)
{
    struct sieve_message m = message_with(header, "bob@example.org");
    char *bytes = (char *)"unset";
    *rc_out = sieve_vacation_compose(&m, v, "mx.example.com", 1183204800, &bytes, len_out);
    if (*rc_out != 0) {
        CHECK(bytes == NULL);
        return NULL;
    }
    check_lines(bytes, *len_out);
    return bytes;
}

static void
test_compose_basic(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    v.reason = "I am away.\nBack on Monday.";
    v.reason_len = strlen(v.reason);
    size_t len = 0;
    int rc;
    char *r = compose(BASE_HEADER "\r\nhello\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r == NULL) {
        return;
    }
    CHECK(strncmp(reply_field(r, len, "Message-ID"), "<vacation.1183204800.", 21) == 0);
    CHECK(strstr(reply_field(r, len, "Message-ID"), "@mx.example.com>") != NULL);
    CHECK_STR(reply_field(r, len, "Date"), "Sat, 30 Jun 2007 12:00:00 +0000");
    CHECK_STR(reply_field(r, len, "From"), "<alice@example.com>");
    CHECK_STR(reply_field(r, len, "To"), "<bob@example.org>");
    CHECK_STR(reply_field(r, len, "Subject"), "Auto: lunch");
    CHECK_STR(reply_field(r, len, "In-Reply-To"), "<m1@example.org>");
    CHECK_STR(reply_field(r, len, "References"), "<m1@example.org>");
    CHECK_STR(reply_field(r, len, "Auto-Submitted"), "auto-replied");
    CHECK_STR(reply_field(r, len, "Precedence"), "bulk");
    CHECK_STR(reply_field(r, len, "MIME-Version"), "1.0");
    CHECK_STR(reply_field(r, len, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_STR(reply_field(r, len, "Content-Transfer-Encoding"), "7bit");
    const char *body = memmem(r, len, "\r\n\r\n", 4);
    CHECK(body != NULL);
    if (body != NULL) {
        body += 4;
        CHECK_BYTES(body, len - (size_t)(body - r), "I am away.\r\nBack on Monday.\r\n", 29);
    }
    /* Another second, another Message-ID. */
    struct sieve_message m = message_with(BASE_HEADER "\r\n", "bob@example.org");
    char *r2 = NULL;
    size_t len2 = 0;
    CHECK(sieve_vacation_compose(&m, &v, "mx.example.com", 1183204801, &r2, &len2) == 0);
    if (r2 != NULL) {
        char first_id[256];
        (void)snprintf(first_id, sizeof(first_id), "%s", reply_field(r, len, "Message-ID"));
        CHECK(strcmp(first_id, reply_field(r2, len2, "Message-ID")) != 0);
    }
    free(r2);
    free(r);

    /* The address that matched is the From, :addresses included. */
    v.addresses[0] = "a.smith@example.com";
    v.address_count = 1;
    r = compose("To: A <a.smith@example.com>\r\n\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "From"), "<a.smith@example.com>");
        CHECK_STR(reply_field(r, len, "Subject"), "Automated reply"); /* no Subject */
        CHECK_STR(reply_field(r, len, "In-Reply-To"), "");            /* no Message-ID */
        CHECK_STR(reply_field(r, len, "References"), "");
    }
    free(r);
}

static void
test_compose_encoding(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    v.reason = "Ich bin weg. Gr\xc3\xbc\xc3\x9f" "e\n";
    v.reason_len = strlen(v.reason);
    size_t len = 0;
    int rc;

    /* A non-ASCII original subject (RFC 2047, ISO-8859-1) is decoded, then
     * "Auto: " + it encoded as UTF-8. */
    char *r = compose("To: alice@example.com\r\nSubject: =?iso-8859-1?q?caf=E9?=\r\n\r\n", &v,
                      &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "Subject"), "=?UTF-8?B?QXV0bzogY2Fmw6k=?=");
        CHECK_STR(reply_field(r, len, "Content-Transfer-Encoding"), "8bit");
    }
    free(r);

    /* :subject and :from given, non-ASCII. */
    v.subject = "Abwesenheit: Gr\xc3\xbc\xc3\x9f" "e";
    v.from = "\"J\xc3\xbcrgen\" <j@example.com>";
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "Subject"), "=?UTF-8?B?QWJ3ZXNlbmhlaXQ6IEdyw7zDn2U=?=");
        CHECK_STR(reply_field(r, len, "From"), "=?UTF-8?B?SsO8cmdlbg==?= <j@example.com>");
    }
    free(r);

    /* A long non-ASCII subject: several encoded words, each <= 75, the
     * whole cut at SIEVE_VACATION_SUBJECT_BYTES_MAX on a character. */
    char subject[600];
    size_t n = 0;
    while (n + 2 < sizeof(subject) - 1) {
        subject[n++] = (char)0xc3;
        subject[n++] = (char)0xa9;
    }
    subject[n] = '\0';
    v.subject = subject;
    v.from = NULL;
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        const char *value = reply_field(r, len, "Subject");
        size_t words = 0;
        size_t longest = 0;
        const char *p = value;
        while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
            const char *e = strstr(p, "?=");
            CHECK(e != NULL);
            if (e == NULL) {
                break;
            }
            size_t w = (size_t)(e + 2 - p);
            longest = w > longest ? w : longest;
            words++;
            p = e + 2;
        }
        CHECK(words == 6); /* 256 bytes / 44 per word (45 would split a character) */
        CHECK(longest <= 75);
    }
    free(r);

    /* Header injection through :from and :subject: CR/LF become spaces. */
    v.subject = "hi\r\nBcc: victim@example.net";
    v.from = "Alice <alice@example.com>\r\nBcc: victim@example.net";
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "Bcc"), "");
        CHECK(memmem(r, len, "\r\nBcc:", 6) == NULL);
        CHECK_STR(reply_field(r, len, "Subject"), "hi  Bcc: victim@example.net");
    }
    free(r);
    v.subject = NULL;
    v.from = NULL;

    /* A line over 998 bytes: the body goes quoted-printable. */
    char reason[2100];
    memset(reason, 'x', 2000);
    memcpy(reason + 2000, " =end\n", 7);
    v.reason = reason;
    v.reason_len = strlen(reason);
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "Content-Transfer-Encoding"), "quoted-printable");
        CHECK(memmem(r, len, " =3Dend\r\n", 9) != NULL);
        const char *body = memmem(r, len, "\r\n\r\n", 4) + 4;
        size_t run = 0;
        size_t longest = 0;
        for (const char *p = body; p < r + len; p++) {
            run = (*p == '\r' || *p == '\n') ? 0 : run + 1;
            longest = run > longest ? run : longest;
        }
        CHECK(longest <= 76);
    }
    free(r);
}

static void
test_compose_references(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    v.reason = "away";
    v.reason_len = 4;
    size_t len = 0;
    int rc;
    char *r = compose("To: alice@example.com\r\nMessage-ID: <m3@x>\r\n"
                      "References: <m1@x>\r\n <m2@x>\r\n\r\n",
                      &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "References"), "<m1@x>\r\n <m2@x>\r\n <m3@x>");
        CHECK_STR(reply_field(r, len, "In-Reply-To"), "<m3@x>");
    }
    free(r);

    /* 25 references + the Message-ID: the first, the last 18, the id. */
    char header[2048];
    size_t n = (size_t)snprintf(header, sizeof(header), "To: alice@example.com\r\n"
                                                        "Message-ID: <last@x>\r\nReferences:");
    for (int i = 1; i <= 25; i++) {
        n += (size_t)snprintf(header + n, sizeof(header) - n, " <r%d@x>", i);
    }
    (void)snprintf(header + n, sizeof(header) - n, "\r\n\r\n");
    r = compose(header, &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        const char *refs = reply_field(r, len, "References");
        size_t count = 0;
        for (const char *p = refs; (p = strchr(p, '<')) != NULL; p++) {
            count++;
        }
        CHECK(count == SIEVE_VACATION_REFERENCES_MAX);
        CHECK(strncmp(refs, "<r1@x>\r\n <r8@x>", 15) == 0);
        CHECK(strstr(refs, "<r7@x>") == NULL);
        CHECK(strstr(refs, "<r25@x>\r\n <last@x>") != NULL);
    }
    free(r);

    /* Ids holding controls, NUL or white space are left out (fuzz find:
     * a NUL inside "<...>" reached the reply). */
    static const char bad_refs[] = "To: alice@example.com\r\nMessage-ID: <m\x01@x>\r\n"
                                   "References: <a@x> <b@x\x01\0\0\xa9> <c d@x> <e@x>\r\n\r\n";
    struct sieve_message bm;
    memset(&bm, 0, sizeof(bm));
    bm.header = bad_refs;
    bm.header_len = sizeof(bad_refs) - 1;
    bm.envelope_from = "bob@example.org";
    bm.user = "alice@example.com";
    char *bad_reply = NULL;
    size_t bad_len = 0;
    CHECK(sieve_vacation_compose(&bm, &v, "mx", 0, &bad_reply, &bad_len) == 0);
    if (bad_reply != NULL) {
        check_lines(bad_reply, bad_len);
        CHECK(memchr(bad_reply, '\0', bad_len) == NULL);
        CHECK(memchr(bad_reply, '\x01', bad_len) == NULL);
        CHECK_STR(reply_field(bad_reply, bad_len, "References"), "<a@x>\r\n <e@x>");
        CHECK_STR(reply_field(bad_reply, bad_len, "In-Reply-To"), "");
    }
    free(bad_reply);

    /* References without a Message-ID; a Message-ID that is no msg-id. */
    r = compose("To: alice@example.com\r\nMessage-ID: junk\r\nReferences: <a@x>\r\n\r\n", &v,
                &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "References"), "<a@x>");
        CHECK_STR(reply_field(r, len, "In-Reply-To"), "");
    }
    free(r);
}

static void
test_compose_mime(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    v.is_mime = true;
    v.reason = "Content-Type: multipart/alternative; boundary=b\n\n--b\n"
               "Content-Type: text/plain\n\naway\n--b\nContent-Type: text/html\n\n"
               "<p>away</p>\n--b--\n";
    v.reason_len = strlen(v.reason);
    size_t len = 0;
    int rc;
    char *r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        CHECK_STR(reply_field(r, len, "MIME-Version"), "1.0");
        CHECK_STR(reply_field(r, len, "Content-Type"), "multipart/alternative; boundary=b");
        CHECK(memmem(r, len, "charset=utf-8", 13) == NULL);
        CHECK(memmem(r, len, "\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\naway\r\n", 40) !=
              NULL);
        CHECK(len > 8 && memcmp(r + len - 7, "--b--\r\n", 7) == 0);
    }
    free(r);

    /* An entity with its own MIME-Version gets no second one; one with a
     * header and no body gets the empty line. */
    v.reason = "MIME-Version: 1.0\r\nContent-Type: text/plain";
    v.reason_len = strlen(v.reason);
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    if (r != NULL) {
        const char *first = memmem(r, len, "MIME-Version", 12);
        CHECK(first != NULL);
        if (first != NULL) {
            CHECK(memmem(first + 1, len - (size_t)(first + 1 - r), "MIME-Version", 12) == NULL);
        }
        CHECK(len > 4 && memcmp(r + len - 4, "\r\n\r\n", 4) == 0);
    }
    free(r);

    /* Not a header block: refused. */
    v.reason = "Dear sender,\n\nI am away.\n";
    v.reason_len = strlen(v.reason);
    CHECK(compose(BASE_HEADER "\r\n", &v, &len, &rc) == NULL);
    CHECK(rc == -EINVAL);
    /* A line too long to send, in an entity we must not re-encode. */
    char big[1200];
    size_t n = (size_t)snprintf(big, sizeof(big), "Content-Type: text/plain\n\n");
    memset(big + n, 'y', 999);
    big[n + 999] = '\0';
    v.reason = big;
    v.reason_len = strlen(big);
    CHECK(compose(BASE_HEADER "\r\n", &v, &len, &rc) == NULL);
    CHECK(rc == -E2BIG);
    big[n + 998] = '\0'; /* 998 is allowed */
    v.reason_len = strlen(big);
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    free(r);
    /* An empty entity: no header, an empty body. */
    v.reason = "";
    v.reason_len = 0;
    r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
    CHECK(rc == 0);
    free(r);
}

static void
test_compose_bounds(void)
{
    struct sieve_vacation v;
    memset(&v, 0, sizeof(v));
    size_t base_len = 0;
    int rc;
    v.reason = "";
    v.reason_len = 0;
    char *r = compose(BASE_HEADER "\r\n", &v, &base_len, &rc);
    CHECK(rc == 0);
    free(r);
    CHECK(base_len > 0 && base_len < 1024);

    /* reason_len bytes of 78-byte lines ending in CRLF add exactly that. */
    size_t max = SIEVE_VACATION_REPLY_BYTES_MAX;
    char *reason = malloc(max + 2);
    CHECK(reason != NULL);
    if (reason == NULL) {
        return;
    }
    for (size_t total = max - 1; total <= max + 1; total++) {
        size_t reason_len = total - base_len;
        memset(reason, 'z', reason_len);
        for (size_t i = 78; i + 3 < reason_len; i += 80) {
            reason[i] = '\r';
            reason[i + 1] = '\n';
        }
        reason[reason_len - 2] = '\r';
        reason[reason_len - 1] = '\n';
        v.reason = reason;
        v.reason_len = reason_len;
        size_t len = 0;
        r = compose(BASE_HEADER "\r\n", &v, &len, &rc);
        if (total <= max) {
            CHECK(rc == 0);
            CHECK(len == total);
        } else {
            CHECK(rc == -E2BIG);
        }
        free(r);
    }
    free(reason);

    /* No sender to reply to; a date outside 0..9999; a hostname too long. */
    struct sieve_message m = message_with(BASE_HEADER "\r\n", NULL);
    char *bytes = NULL;
    size_t len = 0;
    v.reason = "x";
    v.reason_len = 1;
    CHECK(sieve_vacation_compose(&m, &v, "mx", 0, &bytes, &len) == -EINVAL);
    m.envelope_from = "";
    CHECK(sieve_vacation_compose(&m, &v, "mx", 0, &bytes, &len) == -EINVAL);
    m.envelope_from = "bob@example.org";
    CHECK(sieve_vacation_compose(&m, &v, "mx", 253402300800LL, &bytes, &len) == -EINVAL);
    CHECK(bytes == NULL);
    char host[1100];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    CHECK(sieve_vacation_compose(&m, &v, host, 0, &bytes, &len) == -E2BIG);
    CHECK(bytes == NULL);
}

int
main(void)
{
    test_should_reply();
    test_addressed();
    test_key();
    test_compose_basic();
    test_compose_encoding();
    test_compose_references();
    test_compose_mime();
    test_compose_bounds();
    UNIT_DONE();
}
