/*
 * tests/unit/test_smtp_from.c - From: header addresses for the submission
 * policy: a table of header blocks (display names, comments, quoted local
 * parts, groups, folded lines, encoded words, several From: fields) with
 * the addresses each must give, or the refusal; each block is also parsed
 * from a copy of exactly its length, so nothing reads past the end.
 */
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_from.h"
#include "tests/unit/unit.h"

struct from_case {
    const char           *header;
    enum smtp_from_status status;
    const char           *addresses[4];
};

static const struct from_case cases[] = {
    { "From: alice@example.com\r\n\r\n", SMTP_FROM_OK, { "alice@example.com" } },
    { "from:alice@example.com\r\n", SMTP_FROM_OK, { "alice@example.com" } },
    { "Subject: x\r\nFROM : Alice <alice@example.com>\r\n", SMTP_FROM_OK,
      { "alice@example.com" } },
    { "From: \"Doe, John\" <john@example.com>\r\n", SMTP_FROM_OK, { "john@example.com" } },
    { "From: John Q. Public <john@example.com> (home)\r\n", SMTP_FROM_OK,
      { "john@example.com" } },
    { "From: (comment (nested) \\) x) alice@example.com (a<b@c>)\r\n", SMTP_FROM_OK,
      { "alice@example.com" } },
    { "From: \"alice\"@example.com\r\n", SMTP_FROM_OK, { "alice@example.com" } },
    { "From: \"a b\"@example.com\r\n", SMTP_FROM_OK, { "\"a b\"@example.com" } },
    { "From: =?utf-8?Q?Doe,_J=C3=B6hn?= <john@example.com>\r\n", SMTP_FROM_OK,
      { "john@example.com" } },
    { "From: =?utf-8?B?w7xiZXI=?= <u@example.com>, b@example.org\r\n", SMTP_FROM_OK,
      { "u@example.com", "b@example.org" } },
    { "From: Alice\r\n <alice@example.com>,\r\n\tbob@example.com\r\n", SMTP_FROM_OK,
      { "alice@example.com", "bob@example.com" } },
    { "From: team: a@example.com, B <b@example.com>;, c@example.com\r\n", SMTP_FROM_OK,
      { "a@example.com", "b@example.com", "c@example.com" } },
    { "From: <@relay.example:alice@example.com>\r\n", SMTP_FROM_OK, { "alice@example.com" } },
    { "From: j\xc3\xb6rg@example.com\r\n", SMTP_FROM_OK, { "j\xc3\xb6rg@example.com" } },
    { "From: a@[192.0.2.1]\n", SMTP_FROM_OK, { "a@[192.0.2.1]" } },
    /* Two From: fields: both are read. */
    { "From: alice@example.com\r\nTo: x@y\r\nFrom: mallory@evil.test\r\n", SMTP_FROM_OK,
      { "alice@example.com", "mallory@evil.test" } },
    /* A From: in the body is no header. */
    { "Subject: x\r\n\r\nFrom: mallory@evil.test\r\n", SMTP_FROM_ABSENT, { NULL } },
    { "Subject: x\r\nX-From: a@b.c\r\nResent-From: a@b.c\r\n", SMTP_FROM_ABSENT, { NULL } },
    { "From: alice\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: \r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: <>\r\n", SMTP_FROM_SYNTAX, { NULL } },
    /* Control bytes inside quoted strings and literals (fuzz find: a bare
     * CR inside quotes came through into the address). */
    { "From: \"a\rb\"@example.com\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: \"a\\\rb\"@example.com\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: a@[192.0.2.1\x01]\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: Alice <alice@example.com\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: alice@example.com bob@example.com\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: \"unterminated <a@b.c>\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: (open comment a@b.c\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: a@b..c\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: a@\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: undisclosed:;\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: a@b.c>\r\n", SMTP_FROM_SYNTAX, { NULL } },
    { "From: a@b.c\r\nFrom: x\r\n", SMTP_FROM_SYNTAX, { NULL } },
};

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct from_case *c = &cases[i];
        size_t len = strlen(c->header);
        char *copy = malloc(len);
        CHECK(copy != NULL);
        memcpy(copy, c->header, len);
        struct smtp_from_result result;
        enum smtp_from_status status = smtp_from_extract(copy, len, &result);
        free(copy);
        if (status != c->status) {
            fprintf(stderr, "case %zu: status %d, want %d\n", i, (int)status, (int)c->status);
            CHECK(false);
            continue;
        }
        if (status != SMTP_FROM_OK) {
            continue;
        }
        size_t want = 0;
        while (want < 4 && c->addresses[want] != NULL) {
            want++;
        }
        CHECK(result.count == want);
        for (size_t k = 0; k < want && k < result.count; k++) {
            CHECK_STR(result.addresses[k], c->addresses[k]);
        }
    }
}

static void
test_limits(void)
{
    /* SMTP_FROM_ADDRESSES_MAX addresses pass, one more does not. */
    static char header[SMTP_FROM_ADDRESSES_MAX * 16 + 64];
    for (size_t extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(header, sizeof(header), "From: ");
        for (size_t i = 0; i < SMTP_FROM_ADDRESSES_MAX + extra; i++) {
            n += (size_t)snprintf(header + n, sizeof(header) - n, "%sa%zu@b.c", i ? "," : "", i);
        }
        n += (size_t)snprintf(header + n, sizeof(header) - n, "\r\n");
        struct smtp_from_result result;
        enum smtp_from_status status = smtp_from_extract(header, n, &result);
        CHECK(status == (extra == 0 ? SMTP_FROM_OK : SMTP_FROM_TOO_MANY));
    }
    /* A folded field longer than the bound. */
    size_t big = 3 * SMTP_FROM_FIELD_BYTES_MAX;
    char *text = malloc(big + 64);
    CHECK(text != NULL);
    size_t n = (size_t)snprintf(text, 64, "From: a@b.c");
    for (; n + 3 < big; n += 3) {
        memcpy(text + n, "\r\n ", 3);
    }
    struct smtp_from_result result;
    CHECK(smtp_from_extract(text, n, &result) == SMTP_FROM_TOO_MANY);
    free(text);
    /* Deep comments. */
    char deep[200];
    n = (size_t)snprintf(deep, sizeof(deep), "From: ");
    for (int i = 0; i < 40; i++) {
        deep[n++] = '(';
    }
    for (int i = 0; i < 40; i++) {
        deep[n++] = ')';
    }
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, " a@b.c\r\n");
    CHECK(smtp_from_extract(deep, n, &result) == SMTP_FROM_SYNTAX);
}

static void
test_header_length(void)
{
    const char *m = "A: b\r\nC: d\r\n\r\nbody";
    CHECK(smtp_from_header_length(m, strlen(m)) == 14);
    CHECK(smtp_from_header_length("A: b\n\nx", 7) == 6);
    CHECK(smtp_from_header_length("A: b\r\nC: d\r\n", 12) == 0);
}

int
main(void)
{
    test_cases();
    test_limits();
    test_header_length();
    UNIT_DONE();
}
