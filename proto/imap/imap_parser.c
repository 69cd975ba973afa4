/*
 * proto/imap/imap_parser.c - framed IMAP command into tag, command and an
 * argument tree (see imap_parser.h for the shapes).
 *
 * Owns nothing: nodes are the caller's, spans borrow from the command text.
 * Pure and reentrant, so it runs on any reactor thread. One pass over the
 * text; each step consumes at least one byte or ends, so work is linear in
 * the command length, which the reader bounds. Limits: the caller's node
 * count (IMAP_PARSER_NODES_DEFAULT), IMAP_PARSER_DEPTH_MAX nesting.
 *
 * Tokens never run into literal data: the reader tells us where each
 * literal was announced, and an ordinary token stops there. A '{' or "~{"
 * that is not a framed literal announcement is a syntax error.
 */
#include "proto/imap/imap_parser.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "core/assertions.h"
#include "core/utf8.h"

static_assert(IMAP_PARSER_DEPTH_MAX >= 16, "FETCH and SEARCH need some nesting");

static const char *const imap_command_names[IMAP_CMD_COUNT] = {
    [IMAP_CMD_UNKNOWN] = "UNKNOWN",
    [IMAP_CMD_CAPABILITY] = "CAPABILITY",
    [IMAP_CMD_NOOP] = "NOOP",
    [IMAP_CMD_LOGOUT] = "LOGOUT",
    [IMAP_CMD_STARTTLS] = "STARTTLS",
    [IMAP_CMD_AUTHENTICATE] = "AUTHENTICATE",
    [IMAP_CMD_LOGIN] = "LOGIN",
    [IMAP_CMD_ENABLE] = "ENABLE",
    [IMAP_CMD_ID] = "ID",
    [IMAP_CMD_SELECT] = "SELECT",
    [IMAP_CMD_EXAMINE] = "EXAMINE",
    [IMAP_CMD_CREATE] = "CREATE",
    [IMAP_CMD_DELETE] = "DELETE",
    [IMAP_CMD_RENAME] = "RENAME",
    [IMAP_CMD_SUBSCRIBE] = "SUBSCRIBE",
    [IMAP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [IMAP_CMD_LIST] = "LIST",
    [IMAP_CMD_LSUB] = "LSUB",
    [IMAP_CMD_NAMESPACE] = "NAMESPACE",
    [IMAP_CMD_STATUS] = "STATUS",
    [IMAP_CMD_APPEND] = "APPEND",
    [IMAP_CMD_IDLE] = "IDLE",
    [IMAP_CMD_CHECK] = "CHECK",
    [IMAP_CMD_CLOSE] = "CLOSE",
    [IMAP_CMD_UNSELECT] = "UNSELECT",
    [IMAP_CMD_EXPUNGE] = "EXPUNGE",
    [IMAP_CMD_SEARCH] = "SEARCH",
    [IMAP_CMD_FETCH] = "FETCH",
    [IMAP_CMD_STORE] = "STORE",
    [IMAP_CMD_COPY] = "COPY",
    [IMAP_CMD_MOVE] = "MOVE",
    [IMAP_CMD_SORT] = "SORT",
    [IMAP_CMD_THREAD] = "THREAD",
    [IMAP_CMD_GETQUOTA] = "GETQUOTA",
    [IMAP_CMD_GETQUOTAROOT] = "GETQUOTAROOT",
    [IMAP_CMD_SETQUOTA] = "SETQUOTA",
    [IMAP_CMD_GETMETADATA] = "GETMETADATA",
    [IMAP_CMD_SETMETADATA] = "SETMETADATA",
    [IMAP_CMD_COMPRESS] = "COMPRESS",
    [IMAP_CMD_NOTIFY] = "NOTIFY",
};

/* Names that open a fetch section when '[' follows (RFC 3501 fetch-att,
 * RFC 3516 BINARY). */
static const char *const section_names[] = {
    "BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE",
};

struct parser {
    const struct imap_command_text *cmd;
    const char                     *s;
    size_t                          len;
    size_t                          pos;
    size_t                          lit;        /* next literal not yet parsed */
    unsigned                        flags;
    struct imap_node               *nodes;
    size_t                          nodes_max;
    size_t                          count;
    size_t                          depth;      /* 0: the argument list */
    size_t                          section_depth; /* open sections (0 or 1) */
    uint32_t                        open[IMAP_PARSER_DEPTH_MAX + 1];
    uint32_t                        last_child[IMAP_PARSER_DEPTH_MAX + 1];
    size_t                          section_start; /* of the open section's text */
    bool                            has_opened_section; /* the last token was "NAME[" */
};

static enum imap_parse_error parse_head(struct parser *p, struct imap_parsed *out);
static enum imap_parse_error parse_args(struct parser *p);
static enum imap_parse_error parse_atom(struct parser *p);
static enum imap_parse_error parse_quoted(struct parser *p);
static enum imap_parse_error parse_literal(struct parser *p);
static enum imap_parse_error parse_partial(struct parser *p, struct imap_node *node);
static enum imap_parse_error node_add(struct parser *p, enum imap_node_kind kind,
                                      uint32_t *index_out);
static enum imap_parse_error push(struct parser *p, uint32_t index);
static size_t bound(const struct parser *p);
static size_t word_end(const struct parser *p, size_t from);
static enum imap_command command_lookup(struct span name);
static bool command_has_uid_form(enum imap_command command);
static bool digits_u32(const char *s, size_t len, uint32_t *value_out);
static bool is_tag_char(unsigned char c);

enum imap_parse_error
imap_parser_parse(const struct imap_command_text *cmd, unsigned flags, struct imap_node *nodes,
                  size_t nodes_max, struct imap_parsed *out)
{
    ASSERT(cmd != NULL);
    ASSERT(nodes != NULL);
    ASSERT(nodes_max >= 1);
    ASSERT(out != NULL);
    if (cmd->len > 0) {
        ASSERT(cmd->text != NULL);
    }
    if (cmd->literal_count > 0) {
        ASSERT(cmd->literals != NULL);
    }

    memset(out, 0, sizeof(*out));
    out->nodes = nodes;
    out->has_bare_lf = cmd->has_bare_lf;

    struct parser p = {
        .cmd = cmd,
        .s = cmd->text,
        .len = cmd->len,
        .flags = flags,
        .nodes = nodes,
        .nodes_max = nodes_max,
    };
    enum imap_parse_error err = parse_head(&p, out);
    if (err == IMAP_PARSE_OK) {
        err = parse_args(&p);
    }
    out->node_count = p.count;
    out->error_offset = p.pos;
    return err;
}

const char *
imap_command_name(enum imap_command command)
{
    ASSERT((unsigned)command < IMAP_CMD_COUNT);
    return imap_command_names[command];
}

const char *
imap_parse_error_name(enum imap_parse_error error)
{
    switch (error) {
    case IMAP_PARSE_OK:
        return "ok";
    case IMAP_PARSE_BAD_TAG:
        return "invalid tag";
    case IMAP_PARSE_NO_COMMAND:
        return "missing command";
    case IMAP_PARSE_UNKNOWN_COMMAND:
        return "unknown command";
    case IMAP_PARSE_BAD_UID:
        return "command has no UID form";
    case IMAP_PARSE_SYNTAX:
        return "syntax error";
    case IMAP_PARSE_UNBALANCED:
        return "unbalanced parentheses or brackets";
    case IMAP_PARSE_TOO_DEEP:
        return "nesting too deep";
    case IMAP_PARSE_TOO_MANY_NODES:
        return "too many arguments";
    case IMAP_PARSE_8BIT:
        return "8-bit characters not allowed";
    case IMAP_PARSE_NUL:
        return "NUL in literal";
    }
    return "unknown";
}

long
imap_parser_unquote(struct span quoted, char *out, size_t out_bytes)
{
    if (quoted.len > 0) {
        ASSERT(quoted.ptr != NULL);
    }
    if (out_bytes > 0) {
        ASSERT(out != NULL);
    }
    size_t n = 0;
    for (size_t i = 0; i < quoted.len; i++) {
        char c = quoted.ptr[i];
        if (c == '\\' && i + 1 < quoted.len) {
            i++;
            c = quoted.ptr[i];
        }
        if (n == out_bytes) {
            return -1;
        }
        out[n++] = c;
    }
    ASSERT(n <= (size_t)LONG_MAX);
    return (long)n;
}

uint32_t
imap_node_first_child(const struct imap_parsed *parsed, uint32_t index)
{
    ASSERT(parsed != NULL);
    ASSERT(index < parsed->node_count);
    const struct imap_node *node = &parsed->nodes[index];
    ASSERT(node->kind == IMAP_NODE_LIST || node->kind == IMAP_NODE_SECTION);
    return node->child_count > 0 ? index + 1 : IMAP_NODE_NONE;
}

uint32_t
imap_node_next(const struct imap_parsed *parsed, uint32_t index)
{
    ASSERT(parsed != NULL);
    ASSERT(index < parsed->node_count);
    return parsed->nodes[index].next;
}

bool
imap_node_u32(const struct imap_node *node, uint32_t *value_out)
{
    ASSERT(node != NULL);
    ASSERT(value_out != NULL);
    if (node->kind != IMAP_NODE_ATOM) {
        return false;
    }
    return digits_u32(node->text.ptr, node->text.len, value_out);
}

bool
imap_node_is_string(const struct imap_node *node)
{
    ASSERT(node != NULL);
    switch ((enum imap_node_kind)node->kind) {
    case IMAP_NODE_ATOM:
    case IMAP_NODE_NIL:
    case IMAP_NODE_QUOTED:
        return true;
    case IMAP_NODE_LITERAL:
        return (node->flags & IMAP_NODE_F_STREAMED) == 0;
    case IMAP_NODE_LIST:
    case IMAP_NODE_SECTION:
        break;
    }
    return false;
}

/* Helpers. */

/* tag SP [ "UID" SP ] name */
static enum imap_parse_error
parse_head(struct parser *p, struct imap_parsed *out)
{
    size_t end = bound(p);
    size_t i = 0;
    while (i < end && p->s[i] != ' ') {
        if (!is_tag_char((unsigned char)p->s[i])) {
            p->pos = i;
            return IMAP_PARSE_BAD_TAG;
        }
        i++;
    }
    if (i == 0) {
        return IMAP_PARSE_BAD_TAG;
    }
    out->tag = span_make(p->s, i);
    if (i == end) {
        p->pos = i;
        return i == p->len ? IMAP_PARSE_NO_COMMAND : IMAP_PARSE_BAD_TAG;
    }
    i++; /* the space */

    size_t name_end = word_end(p, i);
    if (name_end == i) {
        p->pos = i;
        return IMAP_PARSE_NO_COMMAND;
    }
    struct span name = span_make(p->s + i, name_end - i);
    if (span_equals_nocase(name, "UID")) {
        out->is_uid = true;
        if (name_end == p->len || p->s[name_end] != ' ') {
            p->pos = name_end;
            return IMAP_PARSE_NO_COMMAND;
        }
        i = name_end + 1;
        name_end = word_end(p, i);
        if (name_end == i) {
            p->pos = i;
            return IMAP_PARSE_NO_COMMAND;
        }
        name = span_make(p->s + i, name_end - i);
    }
    out->name = name;
    out->command = command_lookup(name);
    p->pos = name_end;
    if (out->command == IMAP_CMD_UNKNOWN) {
        return IMAP_PARSE_UNKNOWN_COMMAND;
    }
    if (out->is_uid && !command_has_uid_form(out->command)) {
        return IMAP_PARSE_BAD_UID;
    }
    if (name_end < p->len && p->s[name_end] != ' ') {
        return IMAP_PARSE_SYNTAX;
    }
    return IMAP_PARSE_OK;
}

/* The arguments after the command name, as children of nodes[0]. */
static enum imap_parse_error
parse_args(struct parser *p)
{
    uint32_t root;
    enum imap_parse_error err = node_add(p, IMAP_NODE_LIST, &root);
    if (err != IMAP_PARSE_OK) {
        return err;
    }
    ASSERT(root == 0);
    p->nodes[root].text = span_make(p->s + p->pos, p->len - p->pos);
    p->depth = 0;
    p->open[0] = root;
    p->last_child[0] = IMAP_NODE_NONE;

    bool need_sep = true;
    /* Each round consumes at least one byte or returns. */
    for (;;) {
        size_t spaces = 0;
        while (p->pos < p->len && p->s[p->pos] == ' ') {
            p->pos++;
            spaces++;
        }
        if (p->pos == p->len) {
            break;
        }
        char c = p->s[p->pos];
        if (c == ')' || (c == ']' && p->section_depth > 0)) {
            if (p->depth == 0) {
                return IMAP_PARSE_UNBALANCED;
            }
            struct imap_node *node = &p->nodes[p->open[p->depth]];
            bool is_section = node->kind == IMAP_NODE_SECTION;
            if (is_section != (c == ']')) {
                return IMAP_PARSE_UNBALANCED;
            }
            if (is_section) {
                node->section = span_make(p->s + p->section_start, p->pos - p->section_start);
                p->section_depth--;
            }
            p->pos++;
            p->depth--;
            if (is_section && p->pos < p->len && p->s[p->pos] == '<') {
                err = parse_partial(p, node);
                if (err != IMAP_PARSE_OK) {
                    return err;
                }
            }
            need_sep = true;
            continue;
        }
        /* A ']' outside a section starts or continues an atom (astring). */
        if (need_sep && spaces == 0) {
            return IMAP_PARSE_SYNTAX;
        }
        if (c == '(') {
            uint32_t index;
            err = node_add(p, IMAP_NODE_LIST, &index);
            if (err == IMAP_PARSE_OK) {
                err = push(p, index);
            }
            if (err != IMAP_PARSE_OK) {
                return err;
            }
            p->pos++;
            need_sep = false;
            continue;
        }
        if (c == '"') {
            err = parse_quoted(p);
        } else if (p->lit < p->cmd->literal_count &&
                   p->cmd->literals[p->lit].announce_offset == p->pos) {
            err = parse_literal(p);
        } else {
            err = parse_atom(p);
        }
        if (err != IMAP_PARSE_OK) {
            return err;
        }
        /* Right after "BODY[" the first token needs no space. */
        need_sep = !p->has_opened_section;
        p->has_opened_section = false;
    }
    if (p->depth != 0) {
        return IMAP_PARSE_UNBALANCED;
    }
    /* Tokens stop at announcements, so reaching the end used them all. */
    ASSERT(p->lit == p->cmd->literal_count);
    return IMAP_PARSE_OK;
}

/* An atom, NIL, or a section name with its '[' (the section is pushed). */
static enum imap_parse_error
parse_atom(struct parser *p)
{
    size_t start = p->pos;
    size_t end = bound(p);
    uint8_t flags = 0;
    bool opens_section = false;
    size_t i = start;
    while (i < end) {
        unsigned char c = (unsigned char)p->s[i];
        if (c == ' ' || c == '(' || c == ')' || c == '"' || c == '{') {
            break;
        }
        if (c == ']' && p->section_depth > 0) {
            break;
        }
        if (c >= 0x80) {
            p->pos = i;
            return IMAP_PARSE_8BIT;
        }
        if (c < 0x20 || c == 0x7f) {
            p->pos = i;
            return IMAP_PARSE_SYNTAX;
        }
        if (c == '\\' && i != start) {
            p->pos = i;
            return IMAP_PARSE_SYNTAX;
        }
        if (c == '[' && p->section_depth == 0) {
            struct span name = span_make(p->s + start, i - start);
            for (size_t k = 0; k < sizeof(section_names) / sizeof(section_names[0]); k++) {
                if (span_equals_nocase(name, section_names[k])) {
                    opens_section = true;
                    break;
                }
            }
            if (opens_section) {
                break;
            }
        }
        if (c == '%' || c == '*') {
            flags |= IMAP_NODE_F_WILDCARD;
        } else if (c == '[' || c == ']') {
            flags |= IMAP_NODE_F_RESP_SPECIAL;
        }
        i++;
    }
    if (i == start) {
        p->pos = i;
        return IMAP_PARSE_SYNTAX;
    }
    struct span text = span_make(p->s + start, i - start);
    uint32_t index;
    enum imap_node_kind kind = IMAP_NODE_ATOM;
    if (opens_section) {
        kind = IMAP_NODE_SECTION;
    } else if (span_equals_nocase(text, "NIL")) {
        kind = IMAP_NODE_NIL;
    }
    p->pos = i;
    enum imap_parse_error err = node_add(p, kind, &index);
    if (err != IMAP_PARSE_OK) {
        return err;
    }
    p->nodes[index].text = text;
    p->nodes[index].flags = flags;
    if (opens_section) {
        err = push(p, index);
        if (err != IMAP_PARSE_OK) {
            return err;
        }
        p->pos = i + 1; /* the '[' */
        p->section_depth++;
        p->section_start = p->pos;
        p->has_opened_section = true;
    }
    return IMAP_PARSE_OK;
}

/* DQUOTE *QUOTED-CHAR DQUOTE, QUOTED-CHAR = TEXT-CHAR except quoted-specials,
 * or "\" quoted-specials. */
static enum imap_parse_error
parse_quoted(struct parser *p)
{
    size_t end = bound(p);
    size_t start = p->pos + 1;
    size_t i = start;
    uint8_t flags = 0;
    for (;;) {
        if (i >= end) {
            p->pos = i;
            return IMAP_PARSE_SYNTAX;
        }
        unsigned char c = (unsigned char)p->s[i];
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            if (i + 1 >= end || (p->s[i + 1] != '"' && p->s[i + 1] != '\\')) {
                p->pos = i;
                return IMAP_PARSE_SYNTAX;
            }
            flags |= IMAP_NODE_F_ESCAPED;
            i += 2;
            continue;
        }
        if (c == '\r' || c == '\n' || c == '\0') {
            p->pos = i;
            return IMAP_PARSE_SYNTAX;
        }
        if (c >= 0x80) {
            flags |= IMAP_NODE_F_8BIT;
        }
        i++;
    }
    struct span text = span_make(p->s + start, i - start);
    if ((flags & IMAP_NODE_F_8BIT) != 0) {
        if ((p->flags & IMAP_PARSE_F_UTF8) == 0 || !utf8_is_valid(text.ptr, text.len)) {
            p->pos = start;
            return IMAP_PARSE_8BIT;
        }
    }
    p->pos = i + 1;
    uint32_t index;
    enum imap_parse_error err = node_add(p, IMAP_NODE_QUOTED, &index);
    if (err != IMAP_PARSE_OK) {
        return err;
    }
    p->nodes[index].text = text;
    p->nodes[index].flags = flags;
    return IMAP_PARSE_OK;
}

/* A literal the reader framed at this position. */
static enum imap_parse_error
parse_literal(struct parser *p)
{
    const struct imap_literal *lit = &p->cmd->literals[p->lit];
    ASSERT(lit->data_offset <= p->len);
    uint8_t flags = 0;
    struct span text = span_make(NULL, 0);
    if (lit->is_binary) {
        flags |= IMAP_NODE_F_BINARY;
    }
    if (lit->is_streamed) {
        flags |= IMAP_NODE_F_STREAMED;
        p->pos = lit->data_offset;
    } else {
        ASSERT(lit->len <= p->len - lit->data_offset);
        text = span_make(p->s + lit->data_offset, (size_t)lit->len);
        for (size_t i = 0; i < text.len; i++) {
            unsigned char c = (unsigned char)text.ptr[i];
            if (c == 0) {
                if (!lit->is_binary) {
                    p->pos = lit->data_offset + i;
                    return IMAP_PARSE_NUL;
                }
                flags |= IMAP_NODE_F_NUL;
            } else if (c >= 0x80) {
                flags |= IMAP_NODE_F_8BIT;
            }
        }
        p->pos = lit->data_offset + text.len;
    }
    uint32_t index;
    enum imap_parse_error err = node_add(p, IMAP_NODE_LITERAL, &index);
    if (err != IMAP_PARSE_OK) {
        return err;
    }
    ASSERT(p->lit <= UINT32_MAX);
    p->nodes[index].text = text;
    p->nodes[index].flags = flags;
    p->nodes[index].literal_index = (uint32_t)p->lit;
    p->lit++;
    return IMAP_PARSE_OK;
}

/* "<" number "." nz-number ">" after a section. */
static enum imap_parse_error
parse_partial(struct parser *p, struct imap_node *node)
{
    size_t end = bound(p);
    size_t i = p->pos + 1;
    size_t start = i;
    while (i < end && p->s[i] >= '0' && p->s[i] <= '9') {
        i++;
    }
    uint32_t offset;
    if (!digits_u32(p->s + start, i - start, &offset) || i >= end || p->s[i] != '.') {
        p->pos = i;
        return IMAP_PARSE_SYNTAX;
    }
    i++;
    start = i;
    while (i < end && p->s[i] >= '0' && p->s[i] <= '9') {
        i++;
    }
    uint32_t len;
    if (!digits_u32(p->s + start, i - start, &len) || len == 0 || i >= end || p->s[i] != '>') {
        p->pos = i;
        return IMAP_PARSE_SYNTAX;
    }
    node->flags |= IMAP_NODE_F_PARTIAL;
    node->partial_offset = offset;
    node->partial_len = len;
    p->pos = i + 1;
    return IMAP_PARSE_OK;
}

static enum imap_parse_error
node_add(struct parser *p, enum imap_node_kind kind, uint32_t *index_out)
{
    if (p->count == p->nodes_max) {
        return IMAP_PARSE_TOO_MANY_NODES;
    }
    ASSERT(p->count < UINT32_MAX);
    uint32_t index = (uint32_t)p->count++;
    struct imap_node *node = &p->nodes[index];
    memset(node, 0, sizeof(*node));
    node->kind = (uint8_t)kind;
    node->next = IMAP_NODE_NONE;
    if (index > 0) {
        uint32_t parent = p->open[p->depth];
        if (p->last_child[p->depth] != IMAP_NODE_NONE) {
            p->nodes[p->last_child[p->depth]].next = index;
        }
        p->last_child[p->depth] = index;
        p->nodes[parent].child_count++;
    }
    *index_out = index;
    return IMAP_PARSE_OK;
}

static enum imap_parse_error
push(struct parser *p, uint32_t index)
{
    if (p->depth == IMAP_PARSER_DEPTH_MAX) {
        return IMAP_PARSE_TOO_DEEP;
    }
    p->depth++;
    p->open[p->depth] = index;
    p->last_child[p->depth] = IMAP_NODE_NONE;
    return IMAP_PARSE_OK;
}

/* Where ordinary tokens must stop: the next literal announcement. */
static size_t
bound(const struct parser *p)
{
    if (p->lit < p->cmd->literal_count) {
        size_t at = p->cmd->literals[p->lit].announce_offset;
        ASSERT(at <= p->len);
        return at;
    }
    return p->len;
}

/* End of a command name starting at from: letters, digits, '-' and '.'. */
static size_t
word_end(const struct parser *p, size_t from)
{
    size_t end = bound(p);
    size_t i = from;
    while (i < end) {
        char c = p->s[i];
        bool is_word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!is_word) {
            break;
        }
        i++;
    }
    return i;
}

static enum imap_command
command_lookup(struct span name)
{
    for (unsigned c = IMAP_CMD_UNKNOWN + 1; c < IMAP_CMD_COUNT; c++) {
        if (span_equals_nocase(name, imap_command_names[c])) {
            return (enum imap_command)c;
        }
    }
    return IMAP_CMD_UNKNOWN;
}

static bool
command_has_uid_form(enum imap_command command)
{
    switch (command) {
    case IMAP_CMD_FETCH:
    case IMAP_CMD_STORE:
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
    case IMAP_CMD_SEARCH:
    case IMAP_CMD_EXPUNGE:
    case IMAP_CMD_SORT:
    case IMAP_CMD_THREAD:
        return true;
    default:
        return false;
    }
}

/* 1*DIGIT, value at most 2^32-1. */
static bool
digits_u32(const char *s, size_t len, uint32_t *value_out)
{
    if (len == 0) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        value = value * 10 + (uint64_t)(s[i] - '0');
        if (value > UINT32_MAX) {
            return false;
        }
    }
    *value_out = (uint32_t)value;
    return true;
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool
is_tag_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return false;
    }
    return strchr("(){%*\"\\+", c) == NULL;
}
