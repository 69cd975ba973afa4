/*
 * tests/unit/test_smtp_parser.c - smtp_parser_parse(), smtp_verb_name() and
 * smtp_xtext_decode().
 *
 * Table-driven: valid, invalid and borderline lines for every verb, every
 * path form (Dot-string, Quoted-string, route, null, postmaster, literals,
 * UTF-8) and every parameter form, plus limits at max - 1, max and max + 1
 * for path length, parameter count and BDAT size. Each line is parsed from
 * an exact-size heap copy, so ASan reports any read past its end, and every
 * span in the result is checked to lie inside that copy.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_parser.h"
#include "tests/unit/unit.h"

/* A string literal and its length, NUL bytes included. */
#define L(s) (s), (sizeof(s) - 1)

/* Path flags for the tables. */
#define F_NULL 0x1u
#define F_POSTMASTER 0x2u
#define F_ROUTE 0x4u
#define F_UTF8 0x8u

struct parsed {
    char          *copy;
    size_t         len;
    struct smtp_cmd cmd;
    enum smtp_parse_error err;
};

/* Spans are (NULL, 0) or lie inside the line. */
static bool
span_is_inside(struct span s, const char *base, size_t len)
{
    if (s.len == 0) {
        return s.ptr == NULL;
    }
    return s.ptr >= base && s.len <= len && (size_t)(s.ptr - base) <= len - s.len;
}

static void
check_span(const char *file, int line, struct span got, const char *want)
{
    if (want == NULL) {
        return;
    }
    size_t want_len = strlen(want);
    if (want_len == 0) {
        if (got.len == 0 && got.ptr == NULL) {
            unit_checks_passed++;
        } else {
            unit_check_bytes(file, line, got.ptr, got.len, "", 0);
        }
        return;
    }
    if (got.ptr == NULL) {
        unit_check_bytes(file, line, "(null)", 6, want, want_len);
        return;
    }
    unit_check_bytes(file, line, got.ptr, got.len, want, want_len);
}

#define CHECK_SPAN(got, want) check_span(__FILE__, __LINE__, (got), (want))

/* Parse from an exact-size heap copy and check the span invariants that
 * hold for every result. The caller frees p->copy. */
static void
parse_copy(const char *line, size_t len, struct parsed *p)
{
    p->len = len;
    p->copy = malloc(len > 0 ? len : 1);
    if (p->copy == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(p->copy, line, len);
    }
    p->err = smtp_parser_parse(len > 0 ? p->copy : NULL, len, &p->cmd);

    const struct smtp_cmd *c = &p->cmd;
    CHECK(span_is_inside(c->verb_text, p->copy, len));
    CHECK(span_is_inside(c->argument, p->copy, len));
    CHECK(span_is_inside(c->path.mailbox, p->copy, len));
    CHECK(span_is_inside(c->path.local_part, p->copy, len));
    CHECK(span_is_inside(c->path.domain, p->copy, len));
    CHECK(c->param_count <= SMTP_PARAMS_MAX);
    for (size_t i = 0; i < c->param_count; i++) {
        CHECK(span_is_inside(c->params[i].keyword, p->copy, len));
        CHECK(span_is_inside(c->params[i].value, p->copy, len));
        CHECK(c->params[i].has_value == (c->params[i].value.len > 0));
    }
    if (p->err != SMTP_PARSE_OK) {
        CHECK(c->param_count == 0);
        CHECK(c->path.mailbox.len == 0);
        CHECK(!c->path.is_null);
    }
}

/* Verbs and their plain arguments. */

struct verb_case {
    const char           *line;
    size_t                len;
    enum smtp_parse_error want_err;
    enum smtp_verb        want_verb;
    const char           *want_argument; /* NULL: not checked */
};

static const struct verb_case verb_cases[] = {
    { L("HELO example.com"), SMTP_PARSE_OK, SMTP_VERB_HELO, "example.com" },
    { L("helo example.com"), SMTP_PARSE_OK, SMTP_VERB_HELO, "example.com" },
    { L("EHLO example.com"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "example.com" },
    { L("eHlO example.com"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "example.com" },
    { L("EHLO [192.0.2.1]"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "[192.0.2.1]" },
    { L("EHLO [IPv6:2001:db8::1]"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "[IPv6:2001:db8::1]" },
    { L("EHLO   example.com   "), SMTP_PARSE_OK, SMTP_VERB_EHLO, "example.com" },
    { L("EHLO\texample.com"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "example.com" },
    { L("HELO foo bar"), SMTP_PARSE_OK, SMTP_VERB_HELO, "foo bar" },
    { L("HELO not_a.valid-hostname!"), SMTP_PARSE_OK, SMTP_VERB_HELO, NULL },
    { L("EHLO b\xc3\xbc" "cher.example"), SMTP_PARSE_OK, SMTP_VERB_EHLO, NULL },
    { L("EHLO x"), SMTP_PARSE_OK, SMTP_VERB_EHLO, "x" },
    { L("EHLO"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, "" },
    { L("HELO"), SMTP_PARSE_SYNTAX, SMTP_VERB_HELO, "" },
    { L("EHLO    "), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, "" },
    { L("EHLO exa\x01mple"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL },
    { L("EHLO exa\rmple"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL },
    { L("EHLO exa\nmple"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL },
    { L("EHLO \x7f"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL },
    { L("EHLO \x1b[31m"), SMTP_PARSE_SYNTAX, SMTP_VERB_EHLO, NULL },

    { L("DATA"), SMTP_PARSE_OK, SMTP_VERB_DATA, "" },
    { L("data"), SMTP_PARSE_OK, SMTP_VERB_DATA, "" },
    { L("DATA  "), SMTP_PARSE_OK, SMTP_VERB_DATA, "" },
    { L("DATA x"), SMTP_PARSE_SYNTAX, SMTP_VERB_DATA, "x" },
    { L("DATA\t."), SMTP_PARSE_SYNTAX, SMTP_VERB_DATA, "." },
    { L("RSET"), SMTP_PARSE_OK, SMTP_VERB_RSET, "" },
    { L("RSET x"), SMTP_PARSE_SYNTAX, SMTP_VERB_RSET, "x" },
    { L("QUIT"), SMTP_PARSE_OK, SMTP_VERB_QUIT, "" },
    { L("quit now"), SMTP_PARSE_SYNTAX, SMTP_VERB_QUIT, "now" },
    { L("STARTTLS"), SMTP_PARSE_OK, SMTP_VERB_STARTTLS, "" },
    { L("StartTLS"), SMTP_PARSE_OK, SMTP_VERB_STARTTLS, "" },
    { L("STARTTLS x"), SMTP_PARSE_SYNTAX, SMTP_VERB_STARTTLS, "x" },

    { L("NOOP"), SMTP_PARSE_OK, SMTP_VERB_NOOP, "" },
    { L("NOOP anything at all"), SMTP_PARSE_OK, SMTP_VERB_NOOP, "anything at all" },
    { L("NOOP a\x01"), SMTP_PARSE_SYNTAX, SMTP_VERB_NOOP, NULL },
    { L("HELP"), SMTP_PARSE_OK, SMTP_VERB_HELP, "" },
    { L("HELP MAIL"), SMTP_PARSE_OK, SMTP_VERB_HELP, "MAIL" },
    { L("HELP \x02"), SMTP_PARSE_SYNTAX, SMTP_VERB_HELP, NULL },
    { L("VRFY"), SMTP_PARSE_SYNTAX, SMTP_VERB_VRFY, "" },
    { L("VRFY  "), SMTP_PARSE_SYNTAX, SMTP_VERB_VRFY, "" },
    { L("VRFY user"), SMTP_PARSE_OK, SMTP_VERB_VRFY, "user" },
    { L("VRFY J. Smith <js@example.com>"), SMTP_PARSE_OK, SMTP_VERB_VRFY, NULL },
    { L("VRFY a\rb"), SMTP_PARSE_SYNTAX, SMTP_VERB_VRFY, NULL },
    { L("EXPN"), SMTP_PARSE_SYNTAX, SMTP_VERB_EXPN, "" },
    { L("EXPN staff"), SMTP_PARSE_OK, SMTP_VERB_EXPN, "staff" },
    { L("AUTH"), SMTP_PARSE_SYNTAX, SMTP_VERB_AUTH, "" },
    { L("AUTH LOGIN"), SMTP_PARSE_OK, SMTP_VERB_AUTH, "LOGIN" },
    { L("AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q="), SMTP_PARSE_OK, SMTP_VERB_AUTH,
      "PLAIN dGVzdAB0ZXN0AHRlc3Q=" },
    { L("AUTH PLAIN \x01"), SMTP_PARSE_SYNTAX, SMTP_VERB_AUTH, NULL },

    { L(""), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L(" "), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L(" MAIL FROM:<>"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "MAIL FROM:<>" },
    { L("FOO"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("TURN"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("GET / HTTP/1.1"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "/ HTTP/1.1" },
    { L("MAILFROM:<a@b.c>"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("HELOexample.com"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("EHL x"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "x" },
    { L("EHLOO x"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "x" },
    { L("STARTTLSX"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("DATA\r"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },
    { L("D\xc3\x84TA"), SMTP_PARSE_UNKNOWN_VERB, SMTP_VERB_UNKNOWN, "" },

    /* NUL anywhere wins over every other error, verb kept when known. */
    { L("\0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_UNKNOWN, NULL },
    { L("NOOP \0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_NOOP, NULL },
    { L("DATA\0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_UNKNOWN, NULL },
    { L("QUIT \0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_QUIT, NULL },
    { L("EHLO a\0b"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_EHLO, NULL },
    { L("MAIL FROM:<a\0b@c.d>"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_MAIL, NULL },
    { L("RCPT TO:<a@b.c> X=\0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_RCPT, NULL },
    { L("BDAT 1\0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_BDAT, NULL },
    { L("FOO \0"), SMTP_PARSE_NUL_BYTE, SMTP_VERB_UNKNOWN, NULL },
};

static void
test_verbs(void)
{
    for (size_t i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]); i++) {
        const struct verb_case *tc = &verb_cases[i];
        struct parsed p;
        parse_copy(tc->line, tc->len, &p);
        if (p.err != tc->want_err || p.cmd.verb != tc->want_verb) {
            fprintf(stderr, "verb case %zu: err %d verb %d, want %d %d\n", i, (int)p.err,
                    (int)p.cmd.verb, (int)tc->want_err, (int)tc->want_verb);
        }
        CHECK(p.err == tc->want_err);
        CHECK(p.cmd.verb == tc->want_verb);
        CHECK_SPAN(p.cmd.argument, tc->want_argument);
        free(p.copy);
    }
}

/* The verb as sent is reported, even when unknown. */
static void
test_verb_text(void)
{
    struct parsed p;
    parse_copy(L("mAiL FROM:<a@b.c>"), &p);
    CHECK_SPAN(p.cmd.verb_text, "mAiL");
    free(p.copy);
    parse_copy(L("XYZZY plugh"), &p);
    CHECK(p.err == SMTP_PARSE_UNKNOWN_VERB);
    CHECK_SPAN(p.cmd.verb_text, "XYZZY");
    CHECK_SPAN(p.cmd.argument, "plugh");
    free(p.copy);
    parse_copy(L(""), &p);
    CHECK_SPAN(p.cmd.verb_text, "");
    free(p.copy);
}

static void
test_verb_names(void)
{
    for (unsigned v = 0; v < SMTP_VERB_COUNT; v++) {
        const char *name = smtp_verb_name((enum smtp_verb)v);
        CHECK(name != NULL && name[0] != '\0');
        if (v == SMTP_VERB_UNKNOWN || name == NULL) {
            continue;
        }
        /* Every name parses back to its verb (arguments aside). */
        struct smtp_cmd cmd;
        (void)smtp_parser_parse(name, strlen(name), &cmd);
        CHECK(cmd.verb == (enum smtp_verb)v);
    }
    CHECK_STR(smtp_verb_name(SMTP_VERB_MAIL), "MAIL");
    CHECK_STR(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
}

/* BDAT. */

struct bdat_case {
    const char           *line;
    size_t                len;
    enum smtp_parse_error want_err;
    uint64_t              want_size;
    bool                  want_last;
};

static const struct bdat_case bdat_cases[] = {
    { L("BDAT 0"), SMTP_PARSE_OK, 0, false },
    { L("BDAT 0 LAST"), SMTP_PARSE_OK, 0, true },
    { L("BDAT 1000"), SMTP_PARSE_OK, 1000, false },
    { L("BDAT 1000 LAST"), SMTP_PARSE_OK, 1000, true },
    { L("bdat 5 last"), SMTP_PARSE_OK, 5, true },
    { L("BDAT 5 LaSt"), SMTP_PARSE_OK, 5, true },
    { L("BDAT 5   LAST  "), SMTP_PARSE_OK, 5, true },
    { L("BDAT 5\tLAST"), SMTP_PARSE_OK, 5, true },
    { L("BDAT   7"), SMTP_PARSE_OK, 7, false },
    { L("BDAT 007"), SMTP_PARSE_OK, 7, false },
    /* 20 digits: the most; 21: one too many, even as leading zeros. */
    { L("BDAT 18446744073709551615"), SMTP_PARSE_OK, UINT64_MAX, false },
    { L("BDAT 18446744073709551614 LAST"), SMTP_PARSE_OK, UINT64_MAX - 1, true },
    { L("BDAT 00000000000000000001"), SMTP_PARSE_OK, 1, false },
    { L("BDAT 000000000000000000001"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 18446744073709551616"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 99999999999999999999"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 184467440737095516150"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT "), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT LAST"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT -1"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT +1"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 1x"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 0x10"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 1,LAST"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 1 2"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 12 LASTX"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 12 LAS"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 12 FIRST"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 12 LAST extra"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 12 LAST LAST"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT \xd9\xa1"), SMTP_PARSE_SYNTAX, 0, false },
    { L("BDAT 1 \x01"), SMTP_PARSE_SYNTAX, 0, false },
};

static void
test_bdat(void)
{
    for (size_t i = 0; i < sizeof(bdat_cases) / sizeof(bdat_cases[0]); i++) {
        const struct bdat_case *tc = &bdat_cases[i];
        struct parsed p;
        parse_copy(tc->line, tc->len, &p);
        if (p.err != tc->want_err) {
            fprintf(stderr, "bdat case %zu (%s): err %d, want %d\n", i, tc->line, (int)p.err,
                    (int)tc->want_err);
        }
        CHECK(p.err == tc->want_err);
        CHECK(p.cmd.verb == SMTP_VERB_BDAT);
        CHECK(p.cmd.bdat_size == tc->want_size);
        CHECK(p.cmd.bdat_last == tc->want_last);
        free(p.copy);
    }
}

/* MAIL and RCPT paths. */

struct path_case {
    const char           *line;
    size_t                len;
    enum smtp_parse_error want_err;
    const char           *want_mailbox; /* NULL: not checked */
    const char           *want_local;
    const char           *want_domain;
    unsigned              want_flags;
    size_t                want_params;
};

static const struct path_case path_cases[] = {
    /* Plain forms and Postfix's tolerance. */
    { L("MAIL FROM:<user@example.com>"), SMTP_PARSE_OK, "user@example.com", "user",
      "example.com", 0, 0 },
    { L("mail from:<user@example.com>"), SMTP_PARSE_OK, "user@example.com", "user",
      "example.com", 0, 0 },
    { L("MAIL FROM: <user@example.com>"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("MAIL FROM:   <user@example.com>   "), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0,
      0 },
    { L("MAIL FROM:\t<user@example.com>"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("MAIL  FROM:<user@example.com>"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("MAIL FROM:user@example.com"), SMTP_PARSE_OK, "user@example.com", "user", "example.com",
      0, 0 },
    { L("MAIL FROM: user@example.com SIZE=100"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0,
      1 },
    { L("MAIL FROM:<>"), SMTP_PARSE_OK, "", "", "", F_NULL, 0 },
    { L("MAIL FROM: <>"), SMTP_PARSE_OK, "", "", "", F_NULL, 0 },
    { L("MAIL FROM:<> SIZE=0"), SMTP_PARSE_OK, "", "", "", F_NULL, 1 },
    { L("MAIL FROM:"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:   "), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL TO:<a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM <a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM :<a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROMX:<a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a@b.c>SIZE=1"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a@b.c>>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a@b.c> <d@e.f>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },

    /* Unbalanced brackets and quotes. */
    { L("MAIL FROM:<a@b.c"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:a@b.c>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<<a@b.c>>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a<b@c.d>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"abc@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"abc\\\">"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:\"a b\"@example.com"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:\"a\\"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* No domain: only RCPT postmaster. */
    { L("MAIL FROM:<postmaster>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:user"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* Source routes: accepted, dropped, flagged. */
    { L("MAIL FROM:<@a.example,@b.example:user@c.example>"), SMTP_PARSE_OK, "user@c.example",
      "user", "c.example", F_ROUTE, 0 },
    { L("MAIL FROM:<@a.example:user@c.example>"), SMTP_PARSE_OK, "user@c.example", "user",
      "c.example", F_ROUTE, 0 },
    { L("MAIL FROM:@a.example:user@c.example"), SMTP_PARSE_OK, "user@c.example", NULL, NULL,
      F_ROUTE, 0 },
    { L("MAIL FROM:<@b\xc3\xbc" "cher.example:user@c.example>"), SMTP_PARSE_OK, "user@c.example",
      NULL, NULL, F_ROUTE, 0 },
    { L("MAIL FROM:<@a.example:>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@a.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@:user@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@a.example,b.example:user@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL,
      0, 0 },
    { L("MAIL FROM:<@a.example,:user@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@a.example,>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:@a.example,"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@a..example:user@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@[1.2.3.4]:user@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@a.example:@b.example:u@c.example>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL,
      0, 0 },

    /* Quoted-string local parts, quotes kept. */
    { L("MAIL FROM:<\"john doe\"@example.com>"), SMTP_PARSE_OK, "\"john doe\"@example.com",
      "\"john doe\"", "example.com", 0, 0 },
    { L("MAIL FROM:<\"a@b\"@example.com>"), SMTP_PARSE_OK, "\"a@b\"@example.com", "\"a@b\"",
      "example.com", 0, 0 },
    { L("MAIL FROM:<\"a>b\"@example.com>"), SMTP_PARSE_OK, "\"a>b\"@example.com", "\"a>b\"",
      "example.com", 0, 0 },
    { L("MAIL FROM:<\"a<b\"@example.com>"), SMTP_PARSE_OK, "\"a<b\"@example.com", NULL, NULL, 0,
      0 },
    { L("MAIL FROM:<\"a\\\"b\"@example.com>"), SMTP_PARSE_OK, "\"a\\\"b\"@example.com",
      "\"a\\\"b\"", NULL, 0, 0 },
    { L("MAIL FROM:<\"a\\\\b\"@example.com>"), SMTP_PARSE_OK, "\"a\\\\b\"@example.com", NULL,
      NULL, 0, 0 },
    { L("MAIL FROM:<\"\\>\"@example.com>"), SMTP_PARSE_OK, "\"\\>\"@example.com", NULL, NULL, 0,
      0 },
    { L("MAIL FROM:<\"\"@example.com>"), SMTP_PARSE_OK, "\"\"@example.com", "\"\"", NULL, 0, 0 },
    { L("MAIL FROM:<\"\xc3\xbc\"@example.com>"), SMTP_PARSE_OK, NULL, NULL, NULL, F_UTF8, 0 },
    { L("MAIL FROM:<\"a\"b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a\"b\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\x01\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\tb\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\x7f\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\\\x01\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\\\xc3\xbc\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\"a\r\n\"@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* Dot-string local parts. */
    { L("MAIL FROM:<a.b.c@example.com>"), SMTP_PARSE_OK, "a.b.c@example.com", "a.b.c", NULL, 0,
      0 },
    { L("MAIL FROM:<user+tag@example.com>"), SMTP_PARSE_OK, NULL, "user+tag", NULL, 0, 0 },
    { L("MAIL FROM:<!#$%&'*+-/=?^_`{|}~@example.com>"), SMTP_PARSE_OK, NULL,
      "!#$%&'*+-/=?^_`{|}~", NULL, 0, 0 },
    { L("MAIL FROM:<a..b@example.com>"), SMTP_PARSE_OK, NULL, "a..b", NULL, 0, 0 },
    { L("MAIL FROM:<a.@example.com>"), SMTP_PARSE_OK, NULL, "a.", NULL, 0, 0 },
    { L("MAIL FROM:<.a@example.com>"), SMTP_PARSE_OK, NULL, ".a", NULL, 0, 0 },
    { L("MAIL FROM:<.@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<...@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a\x01" "b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a\x7f" "b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a\tb@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a\\b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a(b)@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a,b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a:b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a[b@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* Domains. */
    { L("MAIL FROM:<user@@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@example..com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@.example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@example.com.>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@-example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@example-.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@exa mple.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@exa(mple.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@exa\x01mple.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@a@b.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@ex-ample.com>"), SMTP_PARSE_OK, NULL, NULL, "ex-ample.com", 0, 0 },
    { L("MAIL FROM:<user@ex_ample.com>"), SMTP_PARSE_OK, NULL, NULL, "ex_ample.com", 0, 0 },
    { L("MAIL FROM:<user@localhost>"), SMTP_PARSE_OK, NULL, NULL, "localhost", 0, 0 },
    { L("MAIL FROM:<user@123>"), SMTP_PARSE_OK, NULL, NULL, "123", 0, 0 },
    { L("MAIL FROM:<user@1.2.3.4>"), SMTP_PARSE_OK, NULL, NULL, "1.2.3.4", 0, 0 },
    { L("MAIL FROM:<user@x>"), SMTP_PARSE_OK, NULL, NULL, "x", 0, 0 },

    /* Address literals. */
    { L("MAIL FROM:<user@[192.0.2.1]>"), SMTP_PARSE_OK, "user@[192.0.2.1]", "user", "[192.0.2.1]",
      0, 0 },
    { L("MAIL FROM:<user@[255.255.255.255]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[0.0.0.0]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[001.002.003.004]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[256.1.1.1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1234.1.1.1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1.2.3]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1.2.3.4.5]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1.2.3.]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1..2.3]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1.2.3.4]x>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[1.2.3.4>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@1.2.3.4]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[ 1.2.3.4]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:2001:db8::1]>"), SMTP_PARSE_OK, NULL, NULL, "[IPv6:2001:db8::1]",
      0, 0 },
    { L("MAIL FROM:<user@[ipv6:::1]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:::]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1::]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7:8]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:ABCD:ef01:2345:6789:abcd:EF01:2345:6789]>"), SMTP_PARSE_OK, NULL,
      NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7::]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:::2:3:4:5:6:7:8]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:::ffff:192.0.2.1]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:192.0.2.1]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5::192.0.2.1]>"), SMTP_PARSE_OK, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7:192.0.2.1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL,
      0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6::192.0.2.1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL,
      0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7:8:9]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0,
      0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7:8::]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0,
      0 },
    { L("MAIL FROM:<user@[IPv6:1:2:3:4:5:6:7]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1::2::3]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:::2]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:12345::1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:g::1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1:]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6::1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:1.2.3.4::1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:::1.2.3]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[IPv6:2001:db8::1%eth0]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0,
      0 },
    { L("MAIL FROM:<user@[x-tag:content]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@[2001:db8::1]>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* RFC 6531 UTF-8, and malformed UTF-8. */
    { L("MAIL FROM:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>"),
      SMTP_PARSE_OK, NULL, "\xe7\x94\xa8\xe6\x88\xb7",
      "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
      F_UTF8, 0 },
    { L("MAIL FROM:<\xc3\xbcser@example.com>"), SMTP_PARSE_OK, NULL, NULL, NULL, F_UTF8, 0 },
    { L("MAIL FROM:<user@b\xc3\xbc" "cher.example>"), SMTP_PARSE_OK, NULL, NULL, NULL, F_UTF8, 0 },
    { L("MAIL FROM:<\xf0\x9f\x98\x80@example.com> SMTPUTF8"), SMTP_PARSE_OK, NULL, NULL, NULL,
      F_UTF8, 1 },
    { L("MAIL FROM:<\xc3@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xf1\x80\x80\x80@example.com>"), SMTP_PARSE_OK, NULL, NULL, NULL, F_UTF8, 0 },
    { L("MAIL FROM:<\xf4\x8f\xbf\xbf@example.com>"), SMTP_PARSE_OK, NULL, NULL, NULL, F_UTF8, 0 },
    { L("MAIL FROM:<\xe4\xbe" "A@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xf1\x80\x80" "A@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xf5\x80\x80\x80@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<a@example.com\xe4\xbe>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xc0\xaf@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xe0\x80\xaf@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xed\xa0\x80@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xf4\x90\x80\x80@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\xff@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<\x80@example.com>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("MAIL FROM:<user@example.com\xc3>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },

    /* RCPT. */
    { L("RCPT TO:<user@example.com>"), SMTP_PARSE_OK, "user@example.com", "user", "example.com",
      0, 0 },
    { L("rcpt to:<user@example.com>"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("RCPT TO: <user@example.com>"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("RCPT TO:user@example.com"), SMTP_PARSE_OK, "user@example.com", NULL, NULL, 0, 0 },
    { L("RCPT TO:<postmaster>"), SMTP_PARSE_OK, "postmaster", "postmaster", "", F_POSTMASTER, 0 },
    { L("RCPT TO:<PostMaster>"), SMTP_PARSE_OK, "PostMaster", "PostMaster", "", F_POSTMASTER, 0 },
    { L("RCPT TO:postmaster"), SMTP_PARSE_OK, "postmaster", NULL, "", F_POSTMASTER, 0 },
    { L("RCPT TO:<postmaster> NOTIFY=NEVER"), SMTP_PARSE_OK, "postmaster", NULL, "",
      F_POSTMASTER, 1 },
    { L("RCPT TO:<postmaster@example.com>"), SMTP_PARSE_OK, "postmaster@example.com",
      "postmaster", "example.com", 0, 0 },
    { L("RCPT TO:<\"postmaster\">"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:<@a.example:postmaster>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:<postmistress>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:<postmaster.>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:<>"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("RCPT"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("RCPT FROM:<a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO <a@b.c>"), SMTP_PARSE_SYNTAX, NULL, NULL, NULL, 0, 0 },
    { L("RCPT TO:<@a,@b:u@d>"), SMTP_PARSE_OK, "u@d", "u", "d", F_ROUTE, 0 },
    { L("RCPT TO:<a@b.c> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b.c"), SMTP_PARSE_OK, "a@b.c",
      NULL, NULL, 0, 2 },
    { L("RCPT TO:<a@b.c"), SMTP_PARSE_BAD_PATH, NULL, NULL, NULL, 0, 0 },
};

static void
test_paths(void)
{
    for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
        const struct path_case *tc = &path_cases[i];
        struct parsed p;
        parse_copy(tc->line, tc->len, &p);
        enum smtp_verb want_verb = tc->line[0] == 'R' || tc->line[0] == 'r' ? SMTP_VERB_RCPT
                                                                             : SMTP_VERB_MAIL;
        if (p.err != tc->want_err) {
            fprintf(stderr, "path case %zu: err %d, want %d: ", i, (int)p.err, (int)tc->want_err);
            unit_print_escaped((const unsigned char *)tc->line, tc->len);
            fputc('\n', stderr);
        }
        CHECK(p.err == tc->want_err);
        CHECK(p.cmd.verb == want_verb);
        const struct smtp_path *path = &p.cmd.path;
        CHECK_SPAN(path->mailbox, tc->want_mailbox);
        CHECK_SPAN(path->local_part, tc->want_local);
        CHECK_SPAN(path->domain, tc->want_domain);
        CHECK(path->is_null == ((tc->want_flags & F_NULL) != 0));
        CHECK(path->is_postmaster == ((tc->want_flags & F_POSTMASTER) != 0));
        CHECK(path->has_source_route == ((tc->want_flags & F_ROUTE) != 0));
        CHECK(path->is_utf8 == ((tc->want_flags & F_UTF8) != 0));
        CHECK(p.cmd.param_count == tc->want_params);
        if (p.err == SMTP_PARSE_OK && !path->is_null && !path->is_postmaster) {
            /* mailbox = local_part "@" domain, all within the line. */
            CHECK(path->local_part.ptr == path->mailbox.ptr);
            CHECK(path->local_part.len + 1 + path->domain.len == path->mailbox.len);
            CHECK(path->mailbox.ptr[path->local_part.len] == '@');
        }
        free(p.copy);
    }
}

/* Domain label and name lengths (RFC 1035): 63 / 255 for ASCII. */
static void
test_domain_lengths(void)
{
    char label63[64];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    char line[600];
    struct parsed p;

    (void)snprintf(line, sizeof(line), "MAIL FROM:<u@%s.example>", label63);
    parse_copy(line, strlen(line), &p);
    CHECK(p.err == SMTP_PARSE_OK);
    free(p.copy);

    (void)snprintf(line, sizeof(line), "MAIL FROM:<u@%sa.example>", label63);
    parse_copy(line, strlen(line), &p);
    CHECK(p.err == SMTP_PARSE_BAD_PATH);
    free(p.copy);

    /* 4 * 63 + 3 dots = 255 bytes: the most; one more label byte: 256. */
    (void)snprintf(line, sizeof(line), "MAIL FROM:<u@%s.%s.%s.%s>", label63, label63, label63,
                   label63);
    parse_copy(line, strlen(line), &p);
    CHECK(p.err == SMTP_PARSE_OK);
    CHECK(p.cmd.path.domain.len == 255);
    free(p.copy);

    (void)snprintf(line, sizeof(line), "MAIL FROM:<u@%s.%s.%s.%s.a>", label63, label63, label63,
                   label63);
    parse_copy(line, strlen(line), &p);
    CHECK(p.err == SMTP_PARSE_BAD_PATH);
    free(p.copy);

    /* A U-label longer than 63 bytes in UTF-8 is not held to the ASCII
     * limit (its A-label may still fit). */
    char utf8_line[600];
    size_t n = (size_t)snprintf(utf8_line, sizeof(utf8_line), "MAIL FROM:<u@");
    for (int k = 0; k < 30; k++) {
        memcpy(utf8_line + n, "\xc3\xbc", 2);
        n += 2;
    }
    memcpy(utf8_line + n, ".example>", 9);
    n += 9;
    parse_copy(utf8_line, n, &p);
    CHECK(p.err == SMTP_PARSE_OK);
    CHECK(p.cmd.path.is_utf8);
    free(p.copy);
}

/* Builds "MAIL FROM:<" + path of exactly path_len bytes + ">" (or bare),
 * the path being a long local part "@example.com". */
static size_t
build_long_path(char *buf, size_t buf_bytes, const char *verb_prefix, size_t path_len,
                bool is_bracketed, bool has_route)
{
    const char *domain = "@example.com";
    const char *route = has_route ? "@r.example:" : "";
    size_t fixed = strlen(domain) + strlen(route);
    size_t n = 0;
    size_t prefix_len = strlen(verb_prefix);
    if (path_len < fixed + 1 || prefix_len + path_len + 2 > buf_bytes) {
        abort();
    }
    memcpy(buf + n, verb_prefix, prefix_len);
    n += prefix_len;
    if (is_bracketed) {
        buf[n++] = '<';
    }
    memcpy(buf + n, route, strlen(route));
    n += strlen(route);
    memset(buf + n, 'x', path_len - fixed);
    n += path_len - fixed;
    memcpy(buf + n, domain, strlen(domain));
    n += strlen(domain);
    if (is_bracketed) {
        buf[n++] = '>';
    }
    return n;
}

static void
test_path_length_limit(void)
{
    static const struct {
        size_t                path_len;
        enum smtp_parse_error want_err;
    } limits[] = {
        { SMTP_ADDRESS_BYTES_MAX - 1, SMTP_PARSE_OK },
        { SMTP_ADDRESS_BYTES_MAX, SMTP_PARSE_OK },
        { SMTP_ADDRESS_BYTES_MAX + 1, SMTP_PARSE_PATH_TOO_LONG },
        { SMTP_LINE_BYTES_MAX - 20, SMTP_PARSE_PATH_TOO_LONG },
    };
    static const char *const prefixes[] = { "MAIL FROM:", "RCPT TO:", "MAIL FROM: " };
    char line[SMTP_LINE_BYTES_MAX + 16];

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++) {
            for (int form = 0; form < 3; form++) {
                bool is_bracketed = form != 1;
                bool has_route = form == 2;
                size_t n = build_long_path(line, sizeof(line), prefixes[k], limits[i].path_len,
                                           is_bracketed, has_route);
                struct parsed p;
                parse_copy(line, n, &p);
                if (p.err != limits[i].want_err) {
                    fprintf(stderr, "path length %zu form %d: err %d\n", limits[i].path_len, form,
                            (int)p.err);
                }
                CHECK(p.err == limits[i].want_err);
                if (p.err == SMTP_PARSE_OK) {
                    size_t route_len = has_route ? strlen("@r.example:") : 0;
                    CHECK(p.cmd.path.mailbox.len == limits[i].path_len - route_len);
                    CHECK(p.cmd.path.has_source_route == has_route);
                }
                free(p.copy);
            }
        }
    }

    /* Too long and never closed: the bracket error is what is wrong. */
    size_t n = build_long_path(line, sizeof(line), "MAIL FROM:", SMTP_ADDRESS_BYTES_MAX + 10,
                               true, false);
    struct parsed p;
    parse_copy(line, n - 1, &p);
    CHECK(p.err == SMTP_PARSE_BAD_PATH);
    free(p.copy);
}

/* Parameters. */

struct param_want {
    const char *keyword;
    const char *value; /* NULL: no '=' */
};

struct param_case {
    const char           *line;
    size_t                len;
    enum smtp_parse_error want_err;
    size_t                want_count;
    struct param_want     want[4];
};

static const struct param_case param_cases[] = {
    { L("MAIL FROM:<a@b.c> SIZE=1000 BODY=8BITMIME SMTPUTF8"), SMTP_PARSE_OK, 3,
      { { "SIZE", "1000" }, { "BODY", "8BITMIME" }, { "SMTPUTF8", NULL } } },
    { L("MAIL FROM:<a@b.c>  SIZE=1   BODY=7BIT   "), SMTP_PARSE_OK, 2,
      { { "SIZE", "1" }, { "BODY", "7BIT" } } },
    { L("MAIL FROM:<a@b.c>\tSIZE=1\tRET=HDRS"), SMTP_PARSE_OK, 2,
      { { "SIZE", "1" }, { "RET", "HDRS" } } },
    { L("MAIL FROM:<a@b.c> size=1"), SMTP_PARSE_OK, 1, { { "size", "1" } } },
    { L("MAIL FROM:<a@b.c> 8BITMIME"), SMTP_PARSE_OK, 1, { { "8BITMIME", NULL } } },
    { L("MAIL FROM:<a@b.c> X-=y"), SMTP_PARSE_OK, 1, { { "X-", "y" } } },
    { L("MAIL FROM:<a@b.c> X-Y-Z=a,b;c+2B"), SMTP_PARSE_OK, 1, { { "X-Y-Z", "a,b;c+2B" } } },
    { L("MAIL FROM:<a@b.c> ENVID=\xc3\xbc"), SMTP_PARSE_OK, 1, { { "ENVID", "\xc3\xbc" } } },
    { L("MAIL FROM:<a@b.c> A=!~"), SMTP_PARSE_OK, 1, { { "A", "!~" } } },
    /* Duplicates are the session's business. */
    { L("MAIL FROM:<a@b.c> SIZE=1 SIZE=2"), SMTP_PARSE_OK, 2,
      { { "SIZE", "1" }, { "SIZE", "2" } } },
    { L("RCPT TO:<a@b.c> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b.c"), SMTP_PARSE_OK, 2,
      { { "NOTIFY", "SUCCESS,FAILURE" }, { "ORCPT", "rfc822;a+40b.c" } } },
    { L("MAIL FROM:<a@b.c> =x"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> -X"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> X_Y=1"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> X.Y"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE="), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE==1"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE=1=2"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE=\x01"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE=1\x7f"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE=1\r"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> ENVID=\xc3"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> \xc3\xbc=1"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> SIZE=1 <x@y.z>"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
    { L("MAIL FROM:<a@b.c> \"SIZE\"=1"), SMTP_PARSE_SYNTAX, 0, { { NULL, NULL } } },
};

static void
test_params(void)
{
    for (size_t i = 0; i < sizeof(param_cases) / sizeof(param_cases[0]); i++) {
        const struct param_case *tc = &param_cases[i];
        struct parsed p;
        parse_copy(tc->line, tc->len, &p);
        if (p.err != tc->want_err) {
            fprintf(stderr, "param case %zu: err %d, want %d\n", i, (int)p.err, (int)tc->want_err);
        }
        CHECK(p.err == tc->want_err);
        CHECK(p.cmd.param_count == tc->want_count);
        for (size_t k = 0; k < tc->want_count && k < p.cmd.param_count; k++) {
            const struct smtp_param *param = &p.cmd.params[k];
            CHECK_SPAN(param->keyword, tc->want[k].keyword);
            CHECK(param->has_value == (tc->want[k].value != NULL));
            CHECK_SPAN(param->value, tc->want[k].value != NULL ? tc->want[k].value : "");
        }
        free(p.copy);
    }
}

static void
test_param_count_limit(void)
{
    static const struct {
        size_t                count;
        bool                  is_first_bad;
        enum smtp_parse_error want_err;
    } limits[] = {
        { 0, false, SMTP_PARSE_OK },
        { SMTP_PARAMS_MAX - 1, false, SMTP_PARSE_OK },
        { SMTP_PARAMS_MAX, false, SMTP_PARSE_OK },
        { SMTP_PARAMS_MAX + 1, false, SMTP_PARSE_TOO_MANY_PARAMS },
        { SMTP_PARAMS_MAX * 4, false, SMTP_PARSE_TOO_MANY_PARAMS },
        { SMTP_PARAMS_MAX + 1, true, SMTP_PARSE_SYNTAX },
    };
    static const char *const prefixes[] = { "MAIL FROM:<a@b.c>", "RCPT TO:<a@b.c>",
                                            "MAIL FROM:a@b.c", "MAIL FROM:<>" };
    char line[SMTP_LINE_BYTES_MAX];

    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++) {
            size_t n = (size_t)snprintf(line, sizeof(line), "%s", prefixes[k]);
            for (size_t j = 0; j < limits[i].count; j++) {
                if (j == 0 && limits[i].is_first_bad) {
                    n += (size_t)snprintf(line + n, sizeof(line) - n, " =%zu", j);
                } else {
                    n += (size_t)snprintf(line + n, sizeof(line) - n, " X%zu=v", j);
                }
            }
            struct parsed p;
            parse_copy(line, n, &p);
            CHECK(p.err == limits[i].want_err);
            if (p.err == SMTP_PARSE_OK) {
                CHECK(p.cmd.param_count == limits[i].count);
                if (p.cmd.param_count > 0) {
                    CHECK_SPAN(p.cmd.params[p.cmd.param_count - 1].value, "v");
                }
            }
            free(p.copy);
        }
    }
}

/* A command line at SMTP_LINE_BYTES_MAX is parsed like any other. */
static void
test_long_lines(void)
{
    char line[SMTP_LINE_BYTES_MAX];
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'a', sizeof(line) - 5);
    struct parsed p;
    parse_copy(line, sizeof(line), &p);
    CHECK(p.err == SMTP_PARSE_OK);
    CHECK(p.cmd.argument.len == sizeof(line) - 5);
    free(p.copy);

    memset(line, 'A', sizeof(line));
    parse_copy(line, sizeof(line), &p);
    CHECK(p.err == SMTP_PARSE_UNKNOWN_VERB);
    CHECK(p.cmd.verb_text.len == sizeof(line));
    free(p.copy);

    memset(line, ' ', sizeof(line));
    memcpy(line, "EHLO", 4);
    parse_copy(line, sizeof(line), &p);
    CHECK(p.err == SMTP_PARSE_SYNTAX);
    free(p.copy);
}

/* xtext (RFC 3461 section 4). */

struct xtext_case {
    const char *in;
    size_t      in_len;
    size_t      out_bytes;
    const char *want; /* NULL: -1 */
    size_t      want_len;
};

#define XT_OK(in, n, out) { L(in), (n), (out), sizeof(out) - 1 }
#define XT_BAD(in, n) { L(in), (n), NULL, 0 }

static const struct xtext_case xtext_cases[] = {
    XT_OK("", 16, ""),
    XT_OK("", 0, ""),
    XT_OK("abc", 16, "abc"),
    XT_OK("abc", 3, "abc"),
    XT_BAD("abc", 2),
    XT_BAD("abc", 0),
    XT_OK("a+2Bb", 16, "a+b"),
    XT_OK("a+3Db", 16, "a=b"),
    XT_OK("+2b", 16, "+"),
    XT_OK("+2B+2B", 2, "++"),
    XT_BAD("+2B+2B", 1),
    XT_OK("rfc822;user+40example.com", 64, "rfc822;user@example.com"),
    XT_OK("+20", 16, " "),
    XT_OK("+80+FF", 16, "\x80\xff"),
    XT_OK("!~", 16, "!~"),
    XT_BAD("+", 16),
    XT_BAD("+2", 16),
    XT_BAD("a+", 16),
    XT_BAD("+GG", 16),
    XT_BAD("+ 2", 16),
    XT_BAD("a=b", 16),
    XT_BAD("a b", 16),
    XT_BAD("a\tb", 16),
    XT_BAD("\x80", 16),
    XT_BAD("a\0b", 16),
    XT_BAD("+00", 16),
    XT_BAD("a+0D+0Ab", 16),
    XT_BAD("+1F", 16),
    XT_BAD("+7F", 16),
};

static void
test_xtext(void)
{
    for (size_t i = 0; i < sizeof(xtext_cases) / sizeof(xtext_cases[0]); i++) {
        const struct xtext_case *tc = &xtext_cases[i];
        char *in = malloc(tc->in_len > 0 ? tc->in_len : 1);
        char *out = malloc(tc->out_bytes > 0 ? tc->out_bytes : 1);
        if (in == NULL || out == NULL) {
            abort();
        }
        if (tc->in_len > 0) {
            memcpy(in, tc->in, tc->in_len);
        }
        long got = smtp_xtext_decode(span_make(tc->in_len > 0 ? in : NULL, tc->in_len),
                                     tc->out_bytes > 0 ? out : NULL, tc->out_bytes);
        if (tc->want == NULL) {
            if (got != -1) {
                fprintf(stderr, "xtext case %zu: got %ld, want -1\n", i, got);
            }
            CHECK(got == -1);
        } else {
            CHECK(got == (long)tc->want_len);
            if (got == (long)tc->want_len) {
                CHECK_BYTES(out, (size_t)got, tc->want, tc->want_len);
            }
        }
        free(in);
        free(out);
    }
}

int
main(void)
{
    test_verbs();
    test_verb_text();
    test_verb_names();
    test_bdat();
    test_paths();
    test_domain_lengths();
    test_path_length_limit();
    test_params();
    test_param_count_limit();
    test_long_lines();
    test_xtext();
    UNIT_DONE();
}
