/*
 * filters/sieve_lex.h - the Sieve lexer (RFC 5228 section 8.1): turns
 * script bytes into tokens one at a time for the parser.
 *
 * Strings come out decoded (escapes, dot-stuffing, line ends as CRLF)
 * and copied into the script's arena; identifiers and tags are copied
 * there too. The lexer counts lines (LF ends a line; CRLF and bare LF
 * are both accepted) and stops at the first lexical error, whose text
 * and line it keeps. No I/O; runs on whatever thread compiles.
 * Limits: the string length and the arena's size (struct sieve_limits),
 * SIEVE_IDENTIFIER_BYTES_MAX.
 */
#ifndef TOASTER_FILTERS_SIEVE_LEX_H
#define TOASTER_FILTERS_SIEVE_LEX_H

#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_tree.h"

enum sieve_token_type {
    SIEVE_TOKEN_EOF,
    SIEVE_TOKEN_IDENTIFIER, /* text = the identifier */
    SIEVE_TOKEN_TAG,        /* text = the name without ':' */
    SIEVE_TOKEN_NUMBER,     /* number */
    SIEVE_TOKEN_STRING,     /* text/len = decoded string */
    SIEVE_TOKEN_LSQUARE,    /* [ */
    SIEVE_TOKEN_RSQUARE,    /* ] */
    SIEVE_TOKEN_LPAREN,     /* ( */
    SIEVE_TOKEN_RPAREN,     /* ) */
    SIEVE_TOKEN_LCURLY,     /* { */
    SIEVE_TOKEN_RCURLY,     /* } */
    SIEVE_TOKEN_SEMICOLON,
    SIEVE_TOKEN_COMMA,
};

struct sieve_token {
    enum sieve_token_type type;
    uint32_t line; /* where the token starts */
    char *text;    /* arena copy, NUL-terminated */
    size_t len;
    uint64_t number;
    bool is_multiline;
};

/* The largest number: Pigeonhole's sieve_number_t is 64 bits wide. */
#define SIEVE_NUMBER_MAX UINT64_MAX

struct sieve_lexer {
    const char *src;
    size_t len;
    size_t pos;
    uint32_t line;       /* where pos is */
    uint32_t token_line; /* where the token being read starts */
    struct sieve_arena *arena;
    size_t string_bytes_max;
    /* The first error, when sieve_lexer_next() failed. */
    uint32_t error_line;
    char error[SIEVE_ERROR_TEXT_BYTES];
};

/* Start lexing src[0..len) (borrowed: must outlive the lexer). Tokens'
 * text is allocated from arena. */
void sieve_lexer_init(struct sieve_lexer *lexer, const char *src, size_t len,
                      struct sieve_arena *arena, size_t string_bytes_max);

/* The next token into *token_out (whitespace and comments skipped).
 * Returns 0, -EINVAL for a lexical error (lexer->error, ->error_line say
 * what and where; calling again is not allowed), or -ENOMEM when the
 * arena is full. */
int sieve_lexer_next(struct sieve_lexer *lexer, struct sieve_token *token_out);

/* How a token is named in error messages ("identifier 'keep'", "';'",
 * "end of file"), into buf (always NUL-terminated). */
void sieve_token_describe(const struct sieve_token *token, char *buf, size_t size);

#endif
