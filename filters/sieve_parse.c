/*
 * filters/sieve_parse.c - recursive descent over the Sieve grammar
 * (RFC 5228 section 8.2):
 *
 *   commands  = *command
 *   command   = identifier arguments (";" / block)
 *   block     = "{" commands "}"
 *   arguments = *argument [test / test-list]
 *   argument  = string-list / number / tag
 *   test-list = "(" test *("," test) ")"
 *   test      = identifier arguments
 *
 * Owns the tree's shape and the error list helpers. The recursion is
 * bounded: block nesting by limits->block_depth_max and test nesting by
 * limits->test_depth_max, checked before each descent, so the C stack
 * stays small whatever the script. After a syntax error it skips to the
 * end of the command and goes on, so several errors are reported as
 * sievec does (until the error list is full); a lexical error or a
 * broken limit stops it. Messages follow sievec's wording.
 */
#include "filters/sieve_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"
#include "filters/sieve_lex.h"

struct parser {
    struct sieve_lexer lexer;
    struct sieve_token token; /* the current one */
    struct sieve_script *script;
    const struct sieve_limits *limits;
    struct sieve_errors *errors;
    bool is_recoverable; /* the last error was a plain syntax error */
    bool is_failed;      /* some error was recorded */
};

static int parse_commands(struct parser *p, uint32_t block_depth, struct sieve_node **head_out,
                          size_t *count_out);
static int parse_arguments(struct parser *p, struct sieve_node *node, uint32_t test_depth);

void
sieve_errors_init(struct sieve_errors *errors, size_t count_max)
{
    memset(errors, 0, sizeof(*errors));
    if (count_max < 1) {
        count_max = 1;
    }
    if (count_max > SIEVE_ERRORS_MAX) {
        count_max = SIEVE_ERRORS_MAX;
    }
    errors->count_max = count_max;
}

void
sieve_errors_add(struct sieve_errors *errors, uint32_t line, const char *fmt, ...)
{
    ASSERT(errors->count_max >= 1 && errors->count_max <= SIEVE_ERRORS_MAX);
    if (errors->count >= errors->count_max) {
        errors->is_truncated = true;
        return;
    }
    struct sieve_error *e = &errors->items[errors->count++];
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->text, sizeof(e->text), fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(e->text)) {
        /* Cut: drop a UTF-8 sequence the cut left incomplete. */
        size_t len = strlen(e->text);
        size_t lead = len;
        while (lead > 0 && ((unsigned char)e->text[lead - 1] & 0xc0u) == 0x80u) {
            lead--;
        }
        if (lead > 0 && ((unsigned char)e->text[lead - 1] & 0x80u) != 0) {
            unsigned char c = (unsigned char)e->text[lead - 1];
            size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if (len - (lead - 1) < want) {
                e->text[lead - 1] = '\0';
            }
        }
    }
}

/* Appends to buf like snprintf would, tracking the length needed. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
append(char *buf, size_t size, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = *used < size ? size - *used : 0;
    int n = vsnprintf(room > 0 ? buf + *used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) {
        *used += (size_t)n;
    }
}

size_t
sieve_errors_format(const struct sieve_errors *errors, const char *eol, char *buf, size_t size)
{
    ASSERT(size > 0);
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < errors->count; i++) {
        const struct sieve_error *e = &errors->items[i];
        if (e->line > 0) {
            append(buf, size, &used, "line %u: ", e->line);
        }
        append(buf, size, &used, "error: %s.%s", e->text, eol);
    }
    if (errors->is_truncated) {
        append(buf, size, &used, "error: more errors follow (only the first %zu are shown).%s",
               errors->count, eol);
    }
    return used;
}

/* Records the current lexer or arena failure for rc. */
static int
fail(struct parser *p, int rc)
{
    if (rc == -EINVAL && p->lexer.error[0] != '\0') {
        sieve_errors_add(p->errors, p->lexer.error_line, "%s", p->lexer.error);
    } else if (rc == -ENOMEM && p->script->arena.is_full) {
        sieve_errors_add(p->errors, p->token.line,
                         "script needs too much memory (more than %zu bytes)",
                         p->limits->memory_bytes_max);
        rc = -EINVAL;
    }
    return rc;
}

static int
advance(struct parser *p)
{
    int rc = sieve_lexer_next(&p->lexer, &p->token);
    return rc == 0 ? 0 : fail(p, rc);
}

/* A syntax error naming what was found instead. */
static int
unexpected(struct parser *p, const char *expected)
{
    char found[64];
    sieve_token_describe(&p->token, found, sizeof(found));
    sieve_errors_add(p->errors, p->token.line, "expected %s, but found %s", expected, found);
    p->is_recoverable = true;
    return -EINVAL;
}

/* After a syntax error in a command: skip to the end of that command
 * (its ';' or its block's closing '}', both consumed) or to the '}' that
 * closes the enclosing block (left for the caller), so parsing can go
 * on and report further errors, as sievec does. Each step consumes a
 * token, so this ends. */
static int
recover(struct parser *p)
{
    uint32_t depth = 0;
    for (;;) {
        switch (p->token.type) {
        case SIEVE_TOKEN_EOF:
            return 0;
        case SIEVE_TOKEN_SEMICOLON:
            if (depth == 0) {
                return advance(p);
            }
            break;
        case SIEVE_TOKEN_LCURLY:
            depth++;
            break;
        case SIEVE_TOKEN_RCURLY:
            if (depth == 0) {
                return 0;
            }
            depth--;
            if (depth == 0) {
                return advance(p);
            }
            break;
        default:
            break;
        }
        int rc = advance(p);
        if (rc != 0) {
            return rc;
        }
    }
}

static int
count_node(struct parser *p)
{
    if (p->script->node_count >= p->limits->node_count_max) {
        sieve_errors_add(p->errors, p->token.line,
                         "script has too many commands, tests and arguments (more than %zu)",
                         p->limits->node_count_max);
        return -EINVAL;
    }
    p->script->node_count++;
    return 0;
}

static void *
alloc(struct parser *p, size_t size, int *rc_out)
{
    void *mem = sieve_arena_alloc(&p->script->arena, size);
    *rc_out = mem != NULL ? 0 : fail(p, -ENOMEM);
    return mem;
}

/* The current token is an identifier: a node for it, token consumed. */
static int
new_node(struct parser *p, bool is_test, struct sieve_node **node_out)
{
    ASSERT(p->token.type == SIEVE_TOKEN_IDENTIFIER);
    int rc = count_node(p);
    if (rc != 0) {
        return rc;
    }
    struct sieve_node *node = alloc(p, sizeof(*node), &rc);
    if (node == NULL) {
        return rc;
    }
    node->name = p->token.text;
    node->line = p->token.line;
    node->is_test = is_test;
    *node_out = node;
    return advance(p);
}

/* "[" string *("," string) "]", the current token being "[". */
static int
parse_string_list(struct parser *p, struct sieve_arg *arg)
{
    int rc = advance(p);
    if (rc != 0) {
        return rc;
    }
    size_t capacity = 0;
    for (;;) {
        if (p->token.type != SIEVE_TOKEN_STRING) {
            return unexpected(p, arg->string_count == 0 ? "string after '[' in string list"
                                                        : "string after ',' in string list");
        }
        if (arg->string_count >= p->limits->list_entries_max) {
            sieve_errors_add(p->errors, p->token.line,
                             "string list has too many entries (more than %zu)",
                             p->limits->list_entries_max);
            return -EINVAL;
        }
        if (arg->string_count == capacity) {
            /* Doubling inside the arena: the copies left behind cost at
             * most as much again as the final array. */
            size_t grown = capacity == 0 ? 4 : capacity * 2;
            struct sieve_string *bigger = alloc(p, grown * sizeof(*bigger), &rc);
            if (bigger == NULL) {
                return rc;
            }
            if (arg->string_count > 0) {
                memcpy(bigger, arg->strings, arg->string_count * sizeof(*bigger));
            }
            arg->strings = bigger;
            capacity = grown;
        }
        struct sieve_string *s = &arg->strings[arg->string_count++];
        s->text = p->token.text;
        s->len = p->token.len;
        s->line = p->token.line;
        s->is_multiline = p->token.is_multiline;
        rc = advance(p);
        if (rc != 0) {
            return rc;
        }
        if (p->token.type == SIEVE_TOKEN_RSQUARE) {
            return advance(p);
        }
        if (p->token.type != SIEVE_TOKEN_COMMA) {
            return unexpected(p, "',' or end of string list ']'");
        }
        rc = advance(p);
        if (rc != 0) {
            return rc;
        }
    }
}

/* test = identifier arguments; the current token is the identifier. */
static int
parse_test(struct parser *p, uint32_t test_depth, struct sieve_node **test_out)
{
    if (test_depth > p->limits->test_depth_max) {
        sieve_errors_add(p->errors, p->token.line, "cannot nest tests deeper than %u levels",
                         p->limits->test_depth_max);
        return -EINVAL;
    }
    struct sieve_node *test = NULL;
    int rc = new_node(p, true, &test);
    if (rc != 0) {
        return rc;
    }
    *test_out = test;
    return parse_arguments(p, test, test_depth);
}

static int
parse_test_list(struct parser *p, struct sieve_node *node, uint32_t test_depth)
{
    ASSERT(p->token.type == SIEVE_TOKEN_LPAREN);
    node->is_test_list = true;
    int rc = advance(p);
    if (rc != 0) {
        return rc;
    }
    struct sieve_node **tail = &node->tests;
    for (;;) {
        if (p->token.type != SIEVE_TOKEN_IDENTIFIER) {
            return unexpected(p, node->test_count == 0 ? "test identifier after '(' in test list"
                                                       : "test identifier after ',' in test list");
        }
        struct sieve_node *test = NULL;
        rc = parse_test(p, test_depth + 1, &test);
        if (rc != 0) {
            return rc;
        }
        *tail = test;
        tail = &test->next;
        node->test_count++;
        if (p->token.type == SIEVE_TOKEN_RPAREN) {
            return advance(p);
        }
        if (p->token.type != SIEVE_TOKEN_COMMA) {
            return unexpected(p, "',' or end of test list ')'");
        }
        rc = advance(p);
        if (rc != 0) {
            return rc;
        }
    }
}

/* arguments = *argument [test / test-list]. test_depth is the depth of
 * node itself (0 for a command). */
static int
parse_arguments(struct parser *p, struct sieve_node *node, uint32_t test_depth)
{
    struct sieve_arg **tail = &node->args;
    int rc;
    for (;;) {
        enum sieve_token_type type = p->token.type;
        if (type != SIEVE_TOKEN_LSQUARE && type != SIEVE_TOKEN_STRING &&
            type != SIEVE_TOKEN_NUMBER && type != SIEVE_TOKEN_TAG) {
            break;
        }
        if (node->arg_count >= SIEVE_ARGUMENTS_MAX) {
            sieve_errors_add(p->errors, p->token.line, "too many arguments for %s '%s'",
                             node->is_test ? "test" : "command", node->name);
            return -EINVAL;
        }
        rc = count_node(p);
        if (rc != 0) {
            return rc;
        }
        struct sieve_arg *arg = alloc(p, sizeof(*arg), &rc);
        if (arg == NULL) {
            return rc;
        }
        arg->line = p->token.line;
        if (type == SIEVE_TOKEN_LSQUARE) {
            arg->type = SIEVE_ARG_STRING_LIST;
            rc = parse_string_list(p, arg);
        } else {
            if (type == SIEVE_TOKEN_STRING) {
                arg->type = SIEVE_ARG_STRING;
                arg->strings = alloc(p, sizeof(*arg->strings), &rc);
                if (arg->strings == NULL) {
                    return rc;
                }
                arg->strings->text = p->token.text;
                arg->strings->len = p->token.len;
                arg->strings->line = p->token.line;
                arg->strings->is_multiline = p->token.is_multiline;
                arg->string_count = 1;
            } else if (type == SIEVE_TOKEN_NUMBER) {
                arg->type = SIEVE_ARG_NUMBER;
                arg->number = p->token.number;
            } else {
                arg->type = SIEVE_ARG_TAG;
                arg->tag = p->token.text;
            }
            rc = advance(p);
        }
        if (rc != 0) {
            return rc;
        }
        *tail = arg;
        tail = &arg->next;
        node->arg_count++;
    }
    if (p->token.type == SIEVE_TOKEN_IDENTIFIER) {
        struct sieve_node *test = NULL;
        rc = parse_test(p, test_depth + 1, &test);
        if (rc != 0) {
            return rc;
        }
        node->tests = test;
        node->test_count = 1;
        return 0;
    }
    if (p->token.type == SIEVE_TOKEN_LPAREN) {
        if (test_depth + 1 > p->limits->test_depth_max) {
            sieve_errors_add(p->errors, p->token.line, "cannot nest tests deeper than %u levels",
                             p->limits->test_depth_max);
            return -EINVAL;
        }
        return parse_test_list(p, node, test_depth);
    }
    return 0;
}

/* command = identifier arguments (";" / block) */
static int
parse_command(struct parser *p, uint32_t block_depth, struct sieve_node **command_out)
{
    struct sieve_node *command = NULL;
    int rc = new_node(p, false, &command);
    if (rc != 0) {
        return rc;
    }
    *command_out = command;
    rc = parse_arguments(p, command, 0);
    if (rc != 0) {
        return rc;
    }
    if (p->token.type == SIEVE_TOKEN_SEMICOLON) {
        return advance(p);
    }
    if (p->token.type != SIEVE_TOKEN_LCURLY) {
        return unexpected(p, "end of command ';' or the beginning of a compound block '{'");
    }
    if (block_depth + 1 > p->limits->block_depth_max) {
        sieve_errors_add(p->errors, p->token.line,
                         "cannot nest command blocks deeper than %u levels",
                         p->limits->block_depth_max);
        return -EINVAL;
    }
    command->has_block = true;
    rc = advance(p);
    if (rc != 0) {
        return rc;
    }
    rc = parse_commands(p, block_depth + 1, &command->block, &command->block_count);
    if (rc != 0) {
        return rc;
    }
    if (p->token.type != SIEVE_TOKEN_RCURLY) {
        return unexpected(p, "end of compound block '}'");
    }
    return advance(p);
}

static int
parse_commands(struct parser *p, uint32_t block_depth, struct sieve_node **head_out,
               size_t *count_out)
{
    struct sieve_node **tail = head_out;
    while (p->token.type == SIEVE_TOKEN_IDENTIFIER) {
        struct sieve_node *command = NULL;
        int rc = parse_command(p, block_depth, &command);
        if (command != NULL) {
            *tail = command;
            tail = &command->next;
            (*count_out)++;
        }
        if (rc == -EINVAL && p->is_recoverable) {
            p->is_recoverable = false;
            p->is_failed = true;
            if (p->errors->count < p->errors->count_max) {
                rc = recover(p);
            }
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
sieve_parse(struct sieve_script *script, const char *text, size_t len,
            const struct sieve_limits *limits, struct sieve_errors *errors)
{
    ASSERT(script != NULL && limits != NULL && errors != NULL);
    struct parser p;
    memset(&p, 0, sizeof(p));
    p.script = script;
    p.limits = limits;
    p.errors = errors;
    sieve_lexer_init(&p.lexer, text, len, &script->arena, limits->string_bytes_max);
    int rc = advance(&p);
    if (rc != 0) {
        return rc;
    }
    rc = parse_commands(&p, 0, &script->commands, &script->command_count);
    if (rc != 0) {
        return rc;
    }
    if (p.token.type != SIEVE_TOKEN_EOF) {
        char found[64];
        sieve_token_describe(&p.token, found, sizeof(found));
        sieve_errors_add(errors, p.token.line, "unexpected %s found at (the presumed) end of file",
                         found);
        return -EINVAL;
    }
    return p.is_failed ? -EINVAL : 0;
}
