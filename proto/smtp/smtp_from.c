/*
 * proto/smtp/smtp_from.c - From: header addresses (proto/smtp/smtp_from.h).
 *
 * A small tokenizer (atoms with their dots, quoted strings, domain
 * literals, the specials of RFC 5322 3.2.3, comments and white space
 * skipped) and a parser over it for address-list, which accepts the
 * obsolete forms mail still carries. Pure and allocation-free; any
 * thread. Every loop advances through the bounded field value.
 * Limits: SMTP_FROM_ADDRESSES_MAX, SMTP_FROM_FIELD_BYTES_MAX, comment
 * nesting SMTP_FROM_COMMENT_DEPTH_MAX.
 */
#include "proto/smtp/smtp_from.h"

#include <stdint.h>
#include <string.h>

#define SMTP_FROM_COMMENT_DEPTH_MAX 32
#define SMTP_FROM_ENCODED_WORD_MAX 256

enum token_kind {
    TOKEN_END,
    TOKEN_ATOM,     /* atext and '.' (dot-atom, obs-phrase), or an encoded word */
    TOKEN_QSTRING,  /* text between the quotes, escapes kept */
    TOKEN_DLITERAL, /* "[...]" whole */
    TOKEN_SPECIAL,  /* one of < > @ , ; : */
    TOKEN_ERROR,
};

struct token {
    enum token_kind kind;
    const char     *text;
    size_t          len;
};

struct lexer {
    const char *p;
    const char *end;
};

/* Control characters have no place in qtext or dtext (RFC 5322 3.2.4,
 * 3.4.1); a tab is folding white space. */
static bool
is_control(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && u != '\t') || u == 0x7f;
}

static bool
is_special(char c)
{
    return c == '<' || c == '>' || c == '@' || c == ',' || c == ';' || c == ':';
}

static bool
is_atom_byte(char c)
{
    return !is_special(c) && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '(' &&
           c != ')' && c != '"' && c != '[' && c != ']' && c != '\\' && (unsigned char)c >= 0x20 &&
           c != 0x7f;
}

/* Skip white space and comments. Returns false on an unclosed comment. */
static bool
skip_cfws(struct lexer *lexer)
{
    while (lexer->p < lexer->end) {
        char c = *lexer->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lexer->p++;
            continue;
        }
        if (c != '(') {
            return true;
        }
        int depth = 0;
        do {
            c = *lexer->p;
            if (c == '\\' && lexer->p + 1 < lexer->end) {
                lexer->p++;
            } else if (c == '(') {
                if (++depth > SMTP_FROM_COMMENT_DEPTH_MAX) {
                    return false;
                }
            } else if (c == ')') {
                depth--;
            }
            lexer->p++;
        } while (depth > 0 && lexer->p < lexer->end);
        if (depth > 0) {
            return false;
        }
    }
    return true;
}

/* An RFC 2047 encoded word at p ("=?charset?enc?text?="): its length, or 0.
 * Its text may hold specials in real mail, so it is one atom whole. */
static size_t
encoded_word_length(const char *p, const char *end)
{
    if (end - p < 8 || p[0] != '=' || p[1] != '?') {
        return 0;
    }
    int marks = 0;
    size_t limit = (size_t)(end - p) < SMTP_FROM_ENCODED_WORD_MAX ? (size_t)(end - p)
                                                                   : SMTP_FROM_ENCODED_WORD_MAX;
    for (size_t i = 2; i + 1 < limit; i++) {
        char c = p[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            return 0;
        }
        if (c == '?') {
            if (marks == 2 && p[i + 1] == '=') {
                return i + 2;
            }
            marks++;
            if (marks > 2) {
                return 0;
            }
        }
    }
    return 0;
}

static struct token
next_token(struct lexer *lexer)
{
    if (!skip_cfws(lexer)) {
        return (struct token){ .kind = TOKEN_ERROR };
    }
    if (lexer->p >= lexer->end) {
        return (struct token){ .kind = TOKEN_END };
    }
    const char *start = lexer->p;
    char c = *start;
    if (is_special(c)) {
        lexer->p++;
        return (struct token){ .kind = TOKEN_SPECIAL, .text = start, .len = 1 };
    }
    if (c == '"') {
        const char *p = start + 1;
        while (p < lexer->end && *p != '"') {
            if (*p == '\\') {
                p++;
            }
            if (p < lexer->end && is_control(*p)) {
                return (struct token){ .kind = TOKEN_ERROR }; /* no bare CR, LF or NUL */
            }
            p++;
        }
        if (p >= lexer->end) {
            return (struct token){ .kind = TOKEN_ERROR };
        }
        lexer->p = p + 1;
        return (struct token){ .kind = TOKEN_QSTRING, .text = start + 1,
                               .len = (size_t)(p - start - 1) };
    }
    if (c == '[') {
        const char *p = start + 1;
        while (p < lexer->end && *p != ']' && *p != '[') {
            if (*p == '\\') {
                p++;
            }
            if (p < lexer->end && is_control(*p)) {
                return (struct token){ .kind = TOKEN_ERROR };
            }
            p++;
        }
        if (p >= lexer->end || *p != ']') {
            return (struct token){ .kind = TOKEN_ERROR };
        }
        lexer->p = p + 1;
        return (struct token){ .kind = TOKEN_DLITERAL, .text = start,
                               .len = (size_t)(p + 1 - start) };
    }
    size_t encoded = encoded_word_length(start, lexer->end);
    if (encoded > 0) {
        lexer->p = start + encoded;
        return (struct token){ .kind = TOKEN_ATOM, .text = start, .len = encoded };
    }
    if (!is_atom_byte(c)) {
        return (struct token){ .kind = TOKEN_ERROR };
    }
    const char *p = start;
    while (p < lexer->end && is_atom_byte(*p)) {
        p++;
    }
    lexer->p = p;
    return (struct token){ .kind = TOKEN_ATOM, .text = start, .len = (size_t)(p - start) };
}

static bool
is_special_token(struct token token, char c)
{
    return token.kind == TOKEN_SPECIAL && token.text[0] == c;
}

static bool
is_dot_atom(const char *text, size_t len)
{
    if (len == 0 || text[0] == '.' || text[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_atom_byte(text[i]) || (text[i] == '.' && text[i + 1] == '.')) {
            return false;
        }
    }
    return true;
}

/* The local part being assembled from words (obs-local-part allows several:
 * "a".b). */
struct local_part {
    char   text[SMTP_ADDRESS_BYTES_MAX + 1];
    size_t len;
    size_t words;
    bool   is_single_qstring; /* exactly one word, a quoted string */
    bool   is_overflow;
};

static void
local_add(struct local_part *local, struct token token)
{
    bool is_quoted = token.kind == TOKEN_QSTRING;
    size_t need = token.len + (is_quoted ? 2 : 0);
    local->is_single_qstring = local->words == 0 && is_quoted;
    local->words++;
    if (local->len + need > SMTP_ADDRESS_BYTES_MAX) {
        local->is_overflow = true;
        return;
    }
    if (is_quoted) {
        local->text[local->len++] = '"';
    }
    memcpy(local->text + local->len, token.text, token.len);
    local->len += token.len;
    if (is_quoted) {
        local->text[local->len++] = '"';
    }
}

/* local "@" domain, from the words so far and the domain token. */
static enum smtp_from_status
address_add(struct smtp_from_result *result, struct local_part *local, struct token domain)
{
    if (local->words == 0 || local->is_overflow) {
        return SMTP_FROM_SYNTAX;
    }
    if (domain.kind == TOKEN_ATOM) {
        if (!is_dot_atom(domain.text, domain.len) ||
            encoded_word_length(domain.text, domain.text + domain.len) != 0) {
            return SMTP_FROM_SYNTAX;
        }
    } else if (domain.kind != TOKEN_DLITERAL) {
        return SMTP_FROM_SYNTAX;
    }
    const char *local_text = local->text;
    size_t local_len = local->len;
    /* "alice"@example.com is alice@example.com. */
    if (local->is_single_qstring && local->words == 1 &&
        is_dot_atom(local->text + 1, local->len - 2)) {
        local_text = local->text + 1;
        local_len = local->len - 2;
    }
    if (result->count == SMTP_FROM_ADDRESSES_MAX) {
        return SMTP_FROM_TOO_MANY;
    }
    if (local_len + 1 + domain.len > SMTP_ADDRESS_BYTES_MAX) {
        return SMTP_FROM_SYNTAX;
    }
    char *out = result->addresses[result->count++];
    memcpy(out, local_text, local_len);
    out[local_len] = '@';
    memcpy(out + local_len + 1, domain.text, domain.len);
    out[local_len + 1 + domain.len] = '\0';
    memset(local, 0, sizeof(*local));
    return SMTP_FROM_OK;
}

/* After '<': [obs-route ":"] local "@" domain ">". */
static enum smtp_from_status
parse_angle_addr(struct lexer *lexer, struct smtp_from_result *result)
{
    struct local_part local = { .len = 0 };
    struct token token = next_token(lexer);
    if (is_special_token(token, '@')) {
        /* obs-route "@a,@b:" before the address: skipped. */
        while (!is_special_token(token, ':')) {
            if (token.kind == TOKEN_END || token.kind == TOKEN_ERROR ||
                is_special_token(token, '>')) {
                return SMTP_FROM_SYNTAX;
            }
            token = next_token(lexer);
        }
        token = next_token(lexer);
    }
    while (token.kind == TOKEN_ATOM || token.kind == TOKEN_QSTRING) {
        local_add(&local, token);
        token = next_token(lexer);
    }
    if (!is_special_token(token, '@')) {
        return SMTP_FROM_SYNTAX; /* "<>" and "<alice>" are no mailbox */
    }
    enum smtp_from_status status = address_add(result, &local, next_token(lexer));
    if (status != SMTP_FROM_OK) {
        return status;
    }
    return is_special_token(next_token(lexer), '>') ? SMTP_FROM_OK : SMTP_FROM_SYNTAX;
}

enum smtp_from_status
smtp_from_parse_value(const char *value, size_t len, struct smtp_from_result *result)
{
    struct lexer lexer = { .p = value, .end = value + len };
    struct local_part words = { .len = 0 };
    bool is_in_group = false;
    bool has_address = false;   /* in the current list element */
    size_t count_before = result->count;
    /* Each turn consumes one token, and tokens are at least one byte. */
    for (;;) {
        struct token token = next_token(&lexer);
        switch (token.kind) {
        case TOKEN_ERROR:
        case TOKEN_DLITERAL:
            return SMTP_FROM_SYNTAX;
        case TOKEN_ATOM:
        case TOKEN_QSTRING:
            if (has_address) {
                return SMTP_FROM_SYNTAX; /* "a@b c" */
            }
            local_add(&words, token);
            continue;
        case TOKEN_END:
            /* A group left open at the end is tolerated (obsolete). */
            if (words.words > 0) {
                return SMTP_FROM_SYNTAX;
            }
            return result->count > count_before ? SMTP_FROM_OK : SMTP_FROM_SYNTAX;
        case TOKEN_SPECIAL:
            break;
        }
        enum smtp_from_status status;
        switch (token.text[0]) {
        case '<':
            if (has_address) {
                return SMTP_FROM_SYNTAX;
            }
            status = parse_angle_addr(&lexer, result);
            if (status != SMTP_FROM_OK) {
                return status;
            }
            memset(&words, 0, sizeof(words)); /* the display name */
            has_address = true;
            break;
        case '@':
            if (has_address) {
                return SMTP_FROM_SYNTAX;
            }
            status = address_add(result, &words, next_token(&lexer));
            if (status != SMTP_FROM_OK) {
                return status;
            }
            has_address = true;
            break;
        case ':':
            if (is_in_group || has_address || words.words == 0) {
                return SMTP_FROM_SYNTAX;
            }
            is_in_group = true;
            memset(&words, 0, sizeof(words)); /* the group's name */
            break;
        case ';':
            if (!is_in_group || words.words > 0) {
                return SMTP_FROM_SYNTAX;
            }
            is_in_group = false;
            has_address = false;
            break;
        case ',':
            if (words.words > 0) {
                return SMTP_FROM_SYNTAX; /* a bare word is no address */
            }
            has_address = false;
            break;
        default: /* '>' */
            return SMTP_FROM_SYNTAX;
        }
    }
}

size_t
smtp_from_header_length(const char *message, size_t len)
{
    size_t line_start = 0;
    for (size_t i = 0; i < len; i++) {
        if (message[i] != '\n') {
            continue;
        }
        size_t line_len = i - line_start;
        if (line_len == 0 || (line_len == 1 && message[line_start] == '\r')) {
            return i + 1;
        }
        line_start = i + 1;
    }
    return 0;
}

static bool
is_from_name(const char *line, size_t len, size_t *value_start_out)
{
    static const char name[] = "from";
    if (len < 5) {
        return false;
    }
    for (size_t i = 0; i < 4; i++) {
        char c = line[i];
        if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != name[i]) {
            return false;
        }
    }
    size_t i = 4;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) {
        i++; /* obsolete: white space before the colon */
    }
    if (i >= len || line[i] != ':') {
        return false;
    }
    *value_start_out = i + 1;
    return true;
}

enum smtp_from_status
smtp_from_extract(const char *header, size_t len, struct smtp_from_result *result)
{
    result->count = 0;
    char value[SMTP_FROM_FIELD_BYTES_MAX];
    bool has_from = false;
    size_t i = 0;
    /* Each turn consumes one field (one or more lines). */
    while (i < len) {
        const char *line = header + i;
        const char *lf = memchr(line, '\n', len - i);
        size_t line_len = lf != NULL ? (size_t)(lf - line) : len - i;
        size_t next = i + line_len + (lf != NULL ? 1 : 0);
        size_t text_len = line_len > 0 && line[line_len - 1] == '\r' ? line_len - 1 : line_len;
        if (text_len == 0) {
            break; /* the empty line: end of the header */
        }
        size_t value_start;
        if (!is_from_name(line, text_len, &value_start)) {
            i = next;
            continue;
        }
        has_from = true;
        size_t value_len = 0;
        const char *part = line + value_start;
        size_t part_len = text_len - value_start;
        for (;;) {
            if (value_len + part_len + 1 > sizeof(value)) {
                return SMTP_FROM_TOO_MANY;
            }
            memcpy(value + value_len, part, part_len);
            value_len += part_len;
            value[value_len++] = ' '; /* where the fold was */
            i = next;
            /* A continuation line starts with white space. */
            if (i >= len || (header[i] != ' ' && header[i] != '\t')) {
                break;
            }
            part = header + i;
            lf = memchr(part, '\n', len - i);
            part_len = lf != NULL ? (size_t)(lf - part) : len - i;
            next = i + part_len + (lf != NULL ? 1 : 0);
            if (part_len > 0 && part[part_len - 1] == '\r') {
                part_len--;
            }
        }
        enum smtp_from_status status = smtp_from_parse_value(value, value_len, result);
        if (status != SMTP_FROM_OK) {
            return status;
        }
    }
    return has_from ? SMTP_FROM_OK : SMTP_FROM_ABSENT;
}
