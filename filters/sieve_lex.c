/*
 * filters/sieve_lex.c - the Sieve lexer (RFC 5228 section 8.1).
 *
 * Owns the token grammar: white space and both kinds of comments,
 * identifiers, tags, numbers with K/M/G quantifiers, quoted strings and
 * multi-line "text:" strings. Each string is read twice: a first pass
 * finds its end, checks it and measures the decoded length, a second
 * writes it into an arena block of exactly that size, so no buffer ever
 * grows. Error texts follow Pigeonhole's sievec where one exists.
 *
 * Strings must be UTF-8: RFC 5228 section 1 and 2.4.2 make the script
 * UTF-8 text, and ManageSieve (RFC 5804) stores scripts as UTF-8, so a
 * string literal holding bytes that are not well-formed UTF-8 is an
 * error here (Pigeonhole lets them through). Arbitrary octets remain
 * possible through "${hex:...}" of encoded-character, which is decoded
 * later and not checked. Comments are not checked (the RFC grammar lets
 * them hold any octet but NUL). NUL is refused everywhere, as sievec does.
 * Runs on the compiling thread; no I/O.
 */
#include "filters/sieve_lex.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/utf8.h"

static void lex_error(struct sieve_lexer *lexer, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *char_describe(int c, char *buf, size_t size);

void
sieve_lexer_init(struct sieve_lexer *lexer, const char *src, size_t len, struct sieve_arena *arena,
                 size_t string_bytes_max)
{
    ASSERT(src != NULL || len == 0);
    ASSERT(arena != NULL);
    memset(lexer, 0, sizeof(*lexer));
    lexer->src = src;
    lexer->len = len;
    lexer->pos = 0;
    lexer->line = 1;
    lexer->arena = arena;
    lexer->string_bytes_max = string_bytes_max;
}

static inline int
peek(const struct sieve_lexer *lexer, size_t ahead)
{
    size_t at = lexer->pos + ahead;
    return at < lexer->len ? (unsigned char)lexer->src[at] : -1;
}

static inline bool
is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline bool
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Hash comment: from '#' to the end of the line (the LF is consumed) or
 * of the script. */
static int
skip_hash_comment(struct sieve_lexer *lexer)
{
    ASSERT(peek(lexer, 0) == '#');
    for (;;) {
        int c = peek(lexer, 0);
        if (c == -1) {
            return 0;
        }
        lexer->pos++;
        if (c == '\n') {
            lexer->line++;
            return 0;
        }
        if (c == '\0') {
            lex_error(lexer, lexer->line, "encountered NUL character in hash comment");
            return -EINVAL;
        }
    }
}

static int
skip_bracket_comment(struct sieve_lexer *lexer)
{
    uint32_t start_line = lexer->line;
    lexer->pos += 2; /* the opening slash-star */
    for (;;) {
        int c = peek(lexer, 0);
        if (c == -1) {
            lex_error(lexer, lexer->line,
                      "end of file before end of bracket comment ('/* ... */') "
                      "started at line %u",
                      start_line);
            return -EINVAL;
        }
        if (c == '\0') {
            lex_error(lexer, lexer->line, "encountered NUL character in bracket comment");
            return -EINVAL;
        }
        lexer->pos++;
        if (c == '\n') {
            lexer->line++;
        } else if (c == '*' && peek(lexer, 0) == '/') {
            lexer->pos++;
            return 0;
        }
    }
}

/* Skips white space and comments. */
static int
skip_space(struct sieve_lexer *lexer)
{
    for (;;) {
        int c = peek(lexer, 0);
        if (c == ' ' || c == '\t' || c == '\r') {
            lexer->pos++; /* a stray CR between tokens is ignored, as sievec does */
        } else if (c == '\n') {
            lexer->pos++;
            lexer->line++;
        } else if (c == '#') {
            int rc = skip_hash_comment(lexer);
            if (rc != 0) {
                return rc;
            }
        } else if (c == '/' && peek(lexer, 1) == '*') {
            int rc = skip_bracket_comment(lexer);
            if (rc != 0) {
                return rc;
            }
        } else {
            return 0;
        }
    }
}

/* The body of a quoted string starting at src[pos] (after the '"').
 * Writes the decoded bytes to out when out != NULL. Returns 0 and sets
 * *len_out, *end_out (just past the closing quote) and *lines_out (LFs
 * inside), or -EINVAL after reporting (reporting only when out == NULL:
 * the second pass never fails). */
static int
scan_quoted(struct sieve_lexer *lexer, size_t pos, uint32_t start_line, char *out, size_t *len_out,
            size_t *end_out, uint32_t *lines_out)
{
    size_t n = 0;
    uint32_t lines = 0;
    const char *s = lexer->src;
    for (;;) {
        if (pos >= lexer->len) {
            if (out == NULL) {
                lex_error(lexer, start_line + lines,
                          "end of file before end of quoted string started at line %u", start_line);
            }
            return -EINVAL;
        }
        unsigned char c = (unsigned char)s[pos];
        if (c == '"') {
            pos++;
            break;
        }
        if (c == '\\') {
            /* RFC 5228 2.4.2: "\\" and "\"" stand for the character; any
             * other escape just loses its backslash. */
            pos++;
            if (pos >= lexer->len) {
                continue; /* reported as end of file above */
            }
            c = (unsigned char)s[pos];
        }
        if (c == '\0') {
            if (out == NULL) {
                lex_error(lexer, start_line + lines,
                          "encountered NUL character in quoted string started at line %u",
                          start_line);
            }
            return -EINVAL;
        }
        if (c == '\r') {
            if (pos + 1 >= lexer->len || s[pos + 1] != '\n') {
                if (out == NULL) {
                    lex_error(lexer, start_line + lines,
                              "found stray carriage-return (CR) character in quoted string "
                              "started at line %u",
                              start_line);
                }
                return -EINVAL;
            }
            pos++;
            c = '\n';
        }
        if (c == '\n') {
            /* Line ends are CRLF inside the string, whatever the script used. */
            if (out != NULL) {
                out[n] = '\r';
                out[n + 1] = '\n';
            }
            n += 2;
            lines++;
        } else {
            if (out != NULL) {
                out[n] = (char)c;
            }
            n++;
        }
        pos++;
        if (n > lexer->string_bytes_max) {
            if (out == NULL) {
                lex_error(lexer, start_line,
                          "quoted string started at line %u is too long (longer than %zu "
                          "bytes)",
                          start_line, lexer->string_bytes_max);
            }
            return -EINVAL;
        }
    }
    *len_out = n;
    *end_out = pos;
    *lines_out = lines;
    return 0;
}

/* The lines of a multi-line string starting at src[pos] (the first line
 * after "text:"), up to and including the "." line. Same contract as
 * scan_quoted(). */
static int
scan_multiline(struct sieve_lexer *lexer, size_t pos, uint32_t start_line, char *out,
               size_t *len_out, size_t *end_out, uint32_t *lines_out)
{
    size_t n = 0;
    uint32_t lines = 0; /* LFs consumed from pos on */
    const char *s = lexer->src;
    for (;;) {
        /* At the start of a line. */
        if (pos < lexer->len && s[pos] == '.') {
            size_t after = pos + 1;
            if (after < lexer->len && s[after] == '\r' && after + 1 < lexer->len &&
                s[after + 1] == '\n') {
                after++;
            }
            if (after < lexer->len && s[after] == '\n') {
                *len_out = n;
                *end_out = after + 1;
                *lines_out = lines + 1;
                return 0;
            }
            /* Dot-stuffing: "..x" stands for ".x"; a lone leading dot
             * that is not the end is kept as sievec keeps it. */
            pos++;
            if (pos < lexer->len && s[pos] == '.') {
                pos++;
            }
            if (out != NULL) {
                out[n] = '.';
            }
            n++;
        }
        for (;;) {
            if (pos >= lexer->len) {
                if (out == NULL) {
                    lex_error(lexer, start_line + lines,
                              "end of file before end of multi-line string");
                }
                return -EINVAL;
            }
            unsigned char c = (unsigned char)s[pos];
            if (c == '\0') {
                if (out == NULL) {
                    lex_error(lexer, start_line + lines,
                              "encountered NUL character in multi-line string started at "
                              "line %u",
                              lexer->token_line);
                }
                return -EINVAL;
            }
            if (c == '\r') {
                if (pos + 1 >= lexer->len || s[pos + 1] != '\n') {
                    if (out == NULL) {
                        lex_error(lexer, start_line + lines,
                                  "found stray carriage-return (CR) character in multi-line "
                                  "string started at line %u",
                                  lexer->token_line);
                    }
                    return -EINVAL;
                }
                pos++;
                continue;
            }
            pos++;
            if (c == '\n') {
                if (out != NULL) {
                    out[n] = '\r';
                    out[n + 1] = '\n';
                }
                n += 2;
                lines++;
            } else {
                if (out != NULL) {
                    out[n] = (char)c;
                }
                n++;
            }
            if (n > lexer->string_bytes_max) {
                if (out == NULL) {
                    lex_error(lexer, lexer->token_line,
                              "multi-line string started at line %u is too long (longer "
                              "than %zu bytes)",
                              lexer->token_line, lexer->string_bytes_max);
                }
                return -EINVAL;
            }
            if (c == '\n') {
                break;
            }
        }
    }
}

/* Checks a decoded string for UTF-8; reports the line of the first bad
 * byte. */
static int
check_utf8(struct sieve_lexer *lexer, const char *text, size_t len, uint32_t start_line,
           const char *kind)
{
    const unsigned char *u = (const unsigned char *)text;
    uint32_t line = start_line;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t step = utf8_decode_strict(u + i, len - i, &cp);
        if (step == 0) {
            lex_error(lexer, line,
                      "%s string started at line %u contains invalid UTF-8 (byte 0x%02x)", kind,
                      lexer->token_line, u[i]);
            return -EINVAL;
        }
        if (u[i] == '\n') {
            line++;
        }
        i += step;
    }
    return 0;
}

/* A string token: scan_fn measures, the arena block is cut, scan_fn
 * writes. */
static int
lex_string(struct sieve_lexer *lexer, size_t body_pos, uint32_t start_line, bool is_multiline,
           uint32_t lines_before_body, struct sieve_token *token_out)
{
    size_t len = 0;
    size_t end = 0;
    uint32_t lines = 0;
    int rc = is_multiline ? scan_multiline(lexer, body_pos, start_line + lines_before_body, NULL,
                                           &len, &end, &lines)
                          : scan_quoted(lexer, body_pos, start_line, NULL, &len, &end, &lines);
    if (rc != 0) {
        return rc;
    }
    char *text = sieve_arena_alloc(lexer->arena, len + 1);
    if (text == NULL) {
        return -ENOMEM;
    }
    size_t len2 = 0;
    size_t end2 = 0;
    uint32_t lines2 = 0;
    rc = is_multiline ? scan_multiline(lexer, body_pos, start_line + lines_before_body, text, &len2,
                                       &end2, &lines2)
                      : scan_quoted(lexer, body_pos, start_line, text, &len2, &end2, &lines2);
    ASSERT(rc == 0);
    ASSERT(len2 == len);
    ASSERT(end2 == end);
    text[len] = '\0';
    rc = check_utf8(lexer, text, len, start_line + lines_before_body,
                    is_multiline ? "multi-line" : "quoted");
    if (rc != 0) {
        return rc;
    }
    lexer->pos = end;
    lexer->line = start_line + lines_before_body + lines;
    token_out->type = SIEVE_TOKEN_STRING;
    token_out->text = text;
    token_out->len = len;
    token_out->is_multiline = is_multiline;
    return 0;
}

/* After "text:": optional blanks, then a hash comment or a line end. */
static int
lex_multiline(struct sieve_lexer *lexer, struct sieve_token *token_out)
{
    uint32_t start_line = lexer->line;
    while (peek(lexer, 0) == ' ' || peek(lexer, 0) == '\t') {
        lexer->pos++;
    }
    int c = peek(lexer, 0);
    if (c == '#') {
        int rc = skip_hash_comment(lexer);
        if (rc != 0) {
            return rc;
        }
        if (lexer->line == start_line) {
            lex_error(lexer, lexer->line, "end of file before end of multi-line string");
            return -EINVAL;
        }
    } else if (c == '\r' && peek(lexer, 1) == '\n') {
        lexer->pos += 2;
        lexer->line++;
    } else if (c == '\n') {
        lexer->pos++;
        lexer->line++;
    } else if (c == -1) {
        lex_error(lexer, lexer->line, "end of file before end of multi-line string");
        return -EINVAL;
    } else {
        char buf[16];
        lex_error(lexer, lexer->line, "invalid character %s after 'text:' in multiline string",
                  char_describe(c, buf, sizeof(buf)));
        return -EINVAL;
    }
    /* The token is said to start on the "text:" line. */
    uint32_t body_line = lexer->line;
    lexer->line = start_line;
    return lex_string(lexer, lexer->pos, start_line, true, body_line - start_line, token_out);
}

static int
lex_number(struct sieve_lexer *lexer, struct sieve_token *token_out)
{
    uint64_t value = 0;
    bool is_overflow = false;
    while (is_digit(peek(lexer, 0))) {
        unsigned digit = (unsigned)(peek(lexer, 0) - '0');
        if (value > (SIEVE_NUMBER_MAX - digit) / 10) {
            is_overflow = true;
        } else {
            value = value * 10 + digit;
        }
        lexer->pos++;
    }
    unsigned shift = 0;
    switch (peek(lexer, 0)) {
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    default:
        break;
    }
    if (shift > 0) {
        lexer->pos++;
        if (value > (SIEVE_NUMBER_MAX >> shift)) {
            is_overflow = true;
        } else {
            value <<= shift;
        }
    }
    if (is_overflow) {
        lex_error(lexer, lexer->line, "number exceeds integer limits (max %llu)",
                  (unsigned long long)SIEVE_NUMBER_MAX);
        return -EINVAL;
    }
    token_out->type = SIEVE_TOKEN_NUMBER;
    token_out->number = value;
    return 0;
}

static int
lex_word(struct sieve_lexer *lexer, struct sieve_token *token_out)
{
    bool is_tag = peek(lexer, 0) == ':';
    if (is_tag) {
        lexer->pos++;
        if (!is_alpha_(peek(lexer, 0))) {
            lex_error(lexer, lexer->line, "unexpected character(s) starting with ':'");
            return -EINVAL;
        }
    }
    size_t start = lexer->pos;
    while (is_alpha_(peek(lexer, 0)) || is_digit(peek(lexer, 0))) {
        lexer->pos++;
    }
    size_t len = lexer->pos - start;
    if (len > SIEVE_IDENTIFIER_BYTES_MAX) {
        lex_error(lexer, lexer->line, "encountered impossibly long %s'%.*s...'",
                  is_tag ? "tag identifier :" : "identifier ", 32, lexer->src + start);
        return -EINVAL;
    }
    if (!is_tag && len == 4 && strncasecmp(lexer->src + start, "text", 4) == 0 &&
        peek(lexer, 0) == ':') {
        lexer->pos++;
        return lex_multiline(lexer, token_out);
    }
    token_out->text = sieve_arena_strdup(lexer->arena, lexer->src + start, len);
    if (token_out->text == NULL) {
        return -ENOMEM;
    }
    token_out->len = len;
    token_out->type = is_tag ? SIEVE_TOKEN_TAG : SIEVE_TOKEN_IDENTIFIER;
    return 0;
}

int
sieve_lexer_next(struct sieve_lexer *lexer, struct sieve_token *token_out)
{
    ASSERT(lexer->error[0] == '\0'); /* no calls after an error */
    memset(token_out, 0, sizeof(*token_out));
    int rc = skip_space(lexer);
    if (rc != 0) {
        return rc;
    }
    token_out->line = lexer->line;
    lexer->token_line = lexer->line;
    int c = peek(lexer, 0);
    enum sieve_token_type single;
    switch (c) {
    case -1:
        token_out->type = SIEVE_TOKEN_EOF;
        return 0;
    case '"':
        return lex_string(lexer, lexer->pos + 1, lexer->line, false, 0, token_out);
    case '[':
        single = SIEVE_TOKEN_LSQUARE;
        break;
    case ']':
        single = SIEVE_TOKEN_RSQUARE;
        break;
    case '(':
        single = SIEVE_TOKEN_LPAREN;
        break;
    case ')':
        single = SIEVE_TOKEN_RPAREN;
        break;
    case '{':
        single = SIEVE_TOKEN_LCURLY;
        break;
    case '}':
        single = SIEVE_TOKEN_RCURLY;
        break;
    case ';':
        single = SIEVE_TOKEN_SEMICOLON;
        break;
    case ',':
        single = SIEVE_TOKEN_COMMA;
        break;
    default:
        if (is_digit(c)) {
            return lex_number(lexer, token_out);
        }
        if (is_alpha_(c) || c == ':') {
            return lex_word(lexer, token_out);
        }
        char buf[16];
        lex_error(lexer, lexer->line, "unexpected character(s) starting with %s",
                  char_describe(c, buf, sizeof(buf)));
        return -EINVAL;
    }
    lexer->pos++;
    token_out->type = single;
    return 0;
}

void
sieve_token_describe(const struct sieve_token *token, char *buf, size_t size)
{
    ASSERT(size > 0);
    switch (token->type) {
    case SIEVE_TOKEN_EOF:
        (void)snprintf(buf, size, "end of file");
        break;
    case SIEVE_TOKEN_IDENTIFIER:
        (void)snprintf(buf, size, "identifier '%.*s'", 32, token->text);
        break;
    case SIEVE_TOKEN_TAG:
        (void)snprintf(buf, size, "tag ':%.*s'", 32, token->text);
        break;
    case SIEVE_TOKEN_NUMBER:
        (void)snprintf(buf, size, "number %llu", (unsigned long long)token->number);
        break;
    case SIEVE_TOKEN_STRING:
        (void)snprintf(buf, size, "string");
        break;
    case SIEVE_TOKEN_LSQUARE:
        (void)snprintf(buf, size, "'['");
        break;
    case SIEVE_TOKEN_RSQUARE:
        (void)snprintf(buf, size, "']'");
        break;
    case SIEVE_TOKEN_LPAREN:
        (void)snprintf(buf, size, "'('");
        break;
    case SIEVE_TOKEN_RPAREN:
        (void)snprintf(buf, size, "')'");
        break;
    case SIEVE_TOKEN_LCURLY:
        (void)snprintf(buf, size, "'{'");
        break;
    case SIEVE_TOKEN_RCURLY:
        (void)snprintf(buf, size, "'}'");
        break;
    case SIEVE_TOKEN_SEMICOLON:
        (void)snprintf(buf, size, "';'");
        break;
    case SIEVE_TOKEN_COMMA:
        (void)snprintf(buf, size, "','");
        break;
    }
}

static const char *
char_describe(int c, char *buf, size_t size)
{
    if (c > 31 && c < 127) {
        (void)snprintf(buf, size, "'%c'", c);
    } else {
        (void)snprintf(buf, size, "0x%02x", (unsigned)c & 0xffu);
    }
    return buf;
}

static void
lex_error(struct sieve_lexer *lexer, uint32_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(lexer->error, sizeof(lexer->error), fmt, ap);
    va_end(ap);
    lexer->error_line = line;
    if (lexer->error[0] == '\0') {
        lexer->error[0] = '?';
        lexer->error[1] = '\0';
    }
}
