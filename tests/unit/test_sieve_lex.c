/*
 * tests/unit/test_sieve_lex.c - the Sieve lexer (filters/sieve_lex) on
 * bytes: every token kind, numbers with quantifiers up to and past 2^64,
 * quoted-string escapes, multi-line strings with dot-stuffing and a
 * comment after "text:", both comment kinds, CRLF and LF line counting,
 * and each lexical error with its exact text and line. The string bound
 * is tried at max - 1, max and max + 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_lex.h"
#include "tests/unit/unit.h"

int main(void);

#define TOKENS_MAX 64

struct lexed {
    struct sieve_arena arena;
    struct sieve_lexer lexer;
    struct sieve_token tokens[TOKENS_MAX];
    size_t count; /* tokens before EOF or the error */
    int rc;       /* 0 when EOF was reached */
};

static struct lexed lexed;

/* Lexes src whole; lexed.rc is the first failure or 0. */
static void
lex_all(const char *src, size_t len, size_t string_bytes_max)
{
    sieve_arena_free(&lexed.arena);
    sieve_arena_init(&lexed.arena, 4u * 1024u * 1024u);
    sieve_lexer_init(&lexed.lexer, src, len, &lexed.arena, string_bytes_max);
    lexed.count = 0;
    lexed.rc = 0;
    for (;;) {
        struct sieve_token token;
        int rc = sieve_lexer_next(&lexed.lexer, &token);
        if (rc != 0) {
            lexed.rc = rc;
            return;
        }
        if (token.type == SIEVE_TOKEN_EOF) {
            return;
        }
        if (lexed.count < TOKENS_MAX) {
            lexed.tokens[lexed.count] = token;
        }
        lexed.count++;
    }
}

static void
lex(const char *src)
{
    lex_all(src, strlen(src), 1024);
}

/* The lexer must fail with exactly this error on this line. */
static void
check_error(const char *src, uint32_t line, const char *text)
{
    lex(src);
    CHECK(lexed.rc == -EINVAL);
    CHECK(lexed.lexer.error_line == line);
    CHECK_STR(lexed.lexer.error, text);
}

static void
test_tokens(void)
{
    lex("require [\"a\", \"b\"];\nif header :is \"x\" \"y\" { keep; }\n(,)");
    CHECK(lexed.rc == 0);
    static const enum sieve_token_type want[] = {
        SIEVE_TOKEN_IDENTIFIER, SIEVE_TOKEN_LSQUARE,    SIEVE_TOKEN_STRING,
        SIEVE_TOKEN_COMMA,      SIEVE_TOKEN_STRING,     SIEVE_TOKEN_RSQUARE,
        SIEVE_TOKEN_SEMICOLON,  SIEVE_TOKEN_IDENTIFIER, SIEVE_TOKEN_IDENTIFIER,
        SIEVE_TOKEN_TAG,        SIEVE_TOKEN_STRING,     SIEVE_TOKEN_STRING,
        SIEVE_TOKEN_LCURLY,     SIEVE_TOKEN_IDENTIFIER, SIEVE_TOKEN_SEMICOLON,
        SIEVE_TOKEN_RCURLY,     SIEVE_TOKEN_LPAREN,     SIEVE_TOKEN_COMMA,
        SIEVE_TOKEN_RPAREN,
    };
    CHECK(lexed.count == sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < lexed.count && i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK(lexed.tokens[i].type == want[i]);
    }
    CHECK_STR(lexed.tokens[0].text, "require");
    CHECK(lexed.tokens[0].line == 1);
    CHECK_STR(lexed.tokens[9].text, "is"); /* tag without its colon */
    CHECK(lexed.tokens[9].line == 2);
    CHECK(lexed.tokens[16].line == 3);

    /* Identifiers may hold digits and underscores, never start with a digit. */
    lex("_a1 B_2");
    CHECK(lexed.rc == 0 && lexed.count == 2);
    CHECK_STR(lexed.tokens[0].text, "_a1");
    CHECK_STR(lexed.tokens[1].text, "B_2");
    lex("9a");
    CHECK(lexed.rc == 0 && lexed.count == 2);
    CHECK(lexed.tokens[0].type == SIEVE_TOKEN_NUMBER && lexed.tokens[0].number == 9);
    CHECK(lexed.tokens[1].type == SIEVE_TOKEN_IDENTIFIER);
}

static void
test_numbers(void)
{
    lex("0 7 10K 10k 3M 2g 18446744073709551615 17179869183G");
    CHECK(lexed.rc == 0 && lexed.count == 8);
    CHECK(lexed.tokens[0].number == 0);
    CHECK(lexed.tokens[1].number == 7);
    CHECK(lexed.tokens[2].number == 10240);
    CHECK(lexed.tokens[3].number == 10240);
    CHECK(lexed.tokens[4].number == 3u * 1024u * 1024u);
    CHECK(lexed.tokens[5].number == UINT64_C(2) << 30);
    CHECK(lexed.tokens[6].number == UINT64_MAX);
    CHECK(lexed.tokens[7].number == UINT64_C(17179869183) << 30);
    check_error("keep;\n18446744073709551616", 2,
                "number exceeds integer limits (max 18446744073709551615)");
    check_error("17179869184G", 1, "number exceeds integer limits (max 18446744073709551615)");
    check_error("99999999999999999999999999", 1,
                "number exceeds integer limits (max 18446744073709551615)");
}

static void
test_quoted(void)
{
    lex("\"a\\\\b\\\"c\\d\" \"\" \"line1\nline2\r\nx\"");
    CHECK(lexed.rc == 0 && lexed.count == 3);
    CHECK_BYTES(lexed.tokens[0].text, lexed.tokens[0].len, "a\\b\"cd", 6);
    CHECK(lexed.tokens[1].len == 0);
    CHECK_STR(lexed.tokens[2].text, "line1\r\nline2\r\nx");
    CHECK(lexed.tokens[2].line == 1);
    CHECK(lexed.lexer.line == 3);
    /* UTF-8 is fine. */
    lex("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    CHECK(lexed.rc == 0 && lexed.count == 1);

    check_error("keep;\n\"abc", 2, "end of file before end of quoted string started at line 2");
    check_error("\"a\nb\nc", 3, "end of file before end of quoted string started at line 1");
    check_error("\"abc\\", 1, "end of file before end of quoted string started at line 1");
    check_error("\"a\rb\"", 1,
                "found stray carriage-return (CR) character in quoted string started at line 1");
    lex_all("\"a\0b\"", 5, 1024);
    CHECK(lexed.rc == -EINVAL);
    CHECK_STR(lexed.lexer.error, "encountered NUL character in quoted string started at line 1");
    check_error("\n\"ok\nbad \xc3\x28\"", 3,
                "quoted string started at line 2 contains invalid UTF-8 (byte 0xc3)");
    check_error("\"\xed\xa0\x80\"", 1, /* a surrogate */
                "quoted string started at line 1 contains invalid UTF-8 (byte 0xed)");
    check_error("\"\xc0\xaf\"", 1, /* overlong */
                "quoted string started at line 1 contains invalid UTF-8 (byte 0xc0)");
}

static void
test_string_bound(void)
{
    /* max - 1, max, max + 1 bytes of content. */
    char src[64];
    for (size_t n = 15; n <= 17; n++) {
        src[0] = '"';
        memset(src + 1, 'x', n);
        src[n + 1] = '"';
        lex_all(src, n + 2, 16);
        if (n <= 16) {
            CHECK(lexed.rc == 0 && lexed.count == 1 && lexed.tokens[0].len == n);
        } else {
            CHECK(lexed.rc == -EINVAL);
            CHECK_STR(lexed.lexer.error,
                      "quoted string started at line 1 is too long (longer than 16 bytes)");
        }
    }
    /* A line end counts as CRLF: 7 x + LF = 9 bytes. */
    lex_all("\"xxxxxxx\n\"", 10, 8);
    CHECK(lexed.rc == -EINVAL);
    lex_all("\"xxxxxxx\n\"", 10, 9);
    CHECK(lexed.rc == 0 && lexed.tokens[0].len == 9);
    /* Multi-line: "abc\r\n" is 5 bytes. */
    lex_all("text:\nabc\n.\n", 12, 5);
    CHECK(lexed.rc == 0 && lexed.count == 1 && lexed.tokens[0].len == 5);
    lex_all("text:\nabc\n.\n", 12, 4);
    CHECK(lexed.rc == -EINVAL);
    CHECK_STR(lexed.lexer.error,
              "multi-line string started at line 1 is too long (longer than 4 bytes)");
}

static void
test_multiline(void)
{
    lex("text:\r\nline1\r\n..dot\r\n.x\r\n\r\n.\r\n;");
    CHECK(lexed.rc == 0 && lexed.count == 2);
    CHECK_STR(lexed.tokens[0].text, "line1\r\n.dot\r\n.x\r\n\r\n");
    CHECK(lexed.tokens[0].is_multiline);
    CHECK(lexed.tokens[0].line == 1);
    CHECK(lexed.tokens[1].type == SIEVE_TOKEN_SEMICOLON);
    CHECK(lexed.tokens[1].line == 7);

    /* LF only, blanks and a comment after "text:", TEXT in capitals. */
    lex("TEXT:  \t# a comment\nhello\n.\n keep");
    CHECK(lexed.rc == 0 && lexed.count == 2);
    CHECK_STR(lexed.tokens[0].text, "hello\r\n");
    CHECK(lexed.tokens[1].line == 4);
    /* Empty multi-line string. */
    lex("text:\n.\n");
    CHECK(lexed.rc == 0 && lexed.count == 1 && lexed.tokens[0].len == 0);

    check_error("text:\nabc\n", 3, "end of file before end of multi-line string");
    check_error("text:\nabc\n.", 3, "end of file before end of multi-line string");
    check_error("text: x\nabc\n.\n", 1, "invalid character 'x' after 'text:' in multiline string");
    check_error("text:", 1, "end of file before end of multi-line string");
    check_error("text: # only a comment", 1, "end of file before end of multi-line string");
    check_error("text:\na\rb\n.\n", 2,
                "found stray carriage-return (CR) character in multi-line string started at "
                "line 1");
    check_error("text:\nok\n\xff\n.\n", 3,
                "multi-line string started at line 1 contains invalid UTF-8 (byte 0xff)");
}

static void
test_comments(void)
{
    lex("# hash\r\n/* bracket\n * star * / not the end\n */ keep /**/ ; # last, no newline");
    CHECK(lexed.rc == 0 && lexed.count == 2);
    CHECK_STR(lexed.tokens[0].text, "keep");
    CHECK(lexed.tokens[0].line == 4);
    /* A comment may hold bytes that are not UTF-8. */
    lex("# \xff\xfe\n/* \xc3 */ stop");
    CHECK(lexed.rc == 0 && lexed.count == 1);
    check_error("keep;\n/* never\nclosed", 3,
                "end of file before end of bracket comment ('/* ... */') started at line 2");
    check_error("/* ends in star *", 1,
                "end of file before end of bracket comment ('/* ... */') started at line 1");
    lex_all("# a\0b\n", 6, 1024);
    CHECK(lexed.rc == -EINVAL);
    CHECK_STR(lexed.lexer.error, "encountered NUL character in hash comment");
}

static void
test_bad_characters(void)
{
    check_error("keep;\n\nstop @", 3, "unexpected character(s) starting with '@'");
    check_error("/ x", 1, "unexpected character(s) starting with '/'");
    check_error("keep : is", 1, "unexpected character(s) starting with ':'");
    check_error(":1", 1, "unexpected character(s) starting with ':'");
    check_error("\x01", 1, "unexpected character(s) starting with 0x01");
    /* 64 characters is the longest identifier. */
    char name[80];
    memset(name, 'a', 65);
    name[64] = '\0';
    lex(name);
    CHECK(lexed.rc == 0 && lexed.count == 1 && lexed.tokens[0].len == 64);
    name[64] = 'a';
    name[65] = '\0';
    check_error(name, 1,
                "encountered impossibly long identifier "
                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
}

static void
test_line_endings(void)
{
    /* CRLF, LF and a stray CR between tokens all work; lines count LFs. */
    lex("a\r\nb\nc\rd\r\n\r\ne");
    CHECK(lexed.rc == 0 && lexed.count == 5);
    CHECK(lexed.tokens[0].line == 1);
    CHECK(lexed.tokens[1].line == 2);
    CHECK(lexed.tokens[2].line == 3);
    CHECK(lexed.tokens[3].line == 3);
    CHECK(lexed.tokens[4].line == 5);
}

static void
test_describe(void)
{
    char buf[64];
    struct sieve_token token = {.type = SIEVE_TOKEN_EOF};
    sieve_token_describe(&token, buf, sizeof(buf));
    CHECK_STR(buf, "end of file");
    token.type = SIEVE_TOKEN_IDENTIFIER;
    token.text = (char *)"stop";
    sieve_token_describe(&token, buf, sizeof(buf));
    CHECK_STR(buf, "identifier 'stop'");
    token.type = SIEVE_TOKEN_RCURLY;
    sieve_token_describe(&token, buf, sizeof(buf));
    CHECK_STR(buf, "'}'");
}

int
main(void)
{
    sieve_arena_init(&lexed.arena, 1);
    test_tokens();
    test_numbers();
    test_quoted();
    test_string_bound();
    test_multiline();
    test_comments();
    test_bad_characters();
    test_line_endings();
    test_describe();
    sieve_arena_free(&lexed.arena);
    UNIT_DONE();
}
