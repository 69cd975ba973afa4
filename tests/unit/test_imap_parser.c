/*
 * tests/unit/test_imap_parser.c - imap_parser_parse() on framed commands.
 *
 * Each case is client bytes for one command: they go through imap_reader
 * (so literals are framed exactly as in the daemon), then the parser, and
 * the tree is printed back as text and compared with the expected form.
 * Covers every token kind, fetch sections and partials, real client
 * traffic (Thunderbird, mutt, mbsync, Apple Mail style), UTF8=ACCEPT,
 * nesting and node limits at max - 1, max and max + 1, and malformed input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_reader.h"
#include "tests/unit/unit.h"

#define OUT_BYTES 65536

struct out {
    char   buf[OUT_BYTES];
    size_t len;
};

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static void
put(struct out *o, const char *p, size_t n)
{
    if (o->len + n > OUT_BYTES) {
        n = OUT_BYTES - o->len;
    }
    if (n == 0) {
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void
puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void
render(const struct imap_parsed *parsed, uint32_t index, struct out *o)
{
    const struct imap_node *node = &parsed->nodes[index];
    char tmp[64];
    switch ((enum imap_node_kind)node->kind) {
    case IMAP_NODE_LIST:
    case IMAP_NODE_SECTION: {
        if (node->kind == IMAP_NODE_SECTION) {
            put(o, node->text.ptr, node->text.len);
            puts_(o, "[");
        } else if (index != 0) {
            puts_(o, "(");
        }
        uint32_t child = imap_node_first_child(parsed, index);
        uint32_t seen = 0;
        while (child != IMAP_NODE_NONE) {
            if (seen > 0) {
                puts_(o, " ");
            }
            render(parsed, child, o);
            child = imap_node_next(parsed, child);
            seen++;
        }
        CHECK(seen == node->child_count);
        if (node->kind == IMAP_NODE_SECTION) {
            puts_(o, "]");
            if (node->flags & IMAP_NODE_F_PARTIAL) {
                snprintf(tmp, sizeof(tmp), "<%u.%u>", node->partial_offset, node->partial_len);
                puts_(o, tmp);
            }
        } else if (index != 0) {
            puts_(o, ")");
        }
        break;
    }
    case IMAP_NODE_ATOM:
        put(o, node->text.ptr, node->text.len);
        break;
    case IMAP_NODE_NIL:
        puts_(o, "NIL");
        break;
    case IMAP_NODE_QUOTED:
        puts_(o, "\"");
        put(o, node->text.ptr, node->text.len);
        puts_(o, "\"");
        break;
    case IMAP_NODE_LITERAL:
        snprintf(tmp, sizeof(tmp), "%s{%s%llu}", (node->flags & IMAP_NODE_F_BINARY) ? "~" : "",
                 (node->flags & IMAP_NODE_F_STREAMED) ? "S" : "",
                 (unsigned long long)parsed->nodes[index].text.len);
        puts_(o, tmp);
        put(o, node->text.ptr, node->text.len);
        break;
    }
}

/* Frame in with a reader (APPEND literals over 16 bytes are streamed),
 * parse, and render "tag NAME [UID] | args" or "ERR:<error>". */
static void
parse_render(const char *in, size_t len, unsigned flags, size_t nodes_max, struct out *o,
             enum imap_parse_error *err_out, struct imap_parsed *parsed_out)
{
    static char buf[1 << 17];
    static struct imap_node nodes[IMAP_PARSER_NODES_DEFAULT + 8];
    struct imap_reader_config config;
    imap_reader_config_default(&config, 1 << 20);
    config.inline_bytes_max = 16;
    struct imap_reader reader;
    imap_reader_init(&reader, &config, buf, sizeof(buf), reader_literals);
    o->len = 0;
    size_t pos = 0;
    bool have = false;
    while (pos < len) {
        size_t used;
        enum imap_reader_event ev = imap_reader_feed(&reader, in + pos, len - pos, &used);
        pos += used;
        if (ev == IMAP_READER_COMMAND) {
            have = true;
            break;
        }
        if (ev == IMAP_READER_NEED_MORE || ev == IMAP_READER_CONTINUE ||
            ev == IMAP_READER_LITERAL_DATA) {
            continue;
        }
        break;
    }
    CHECK(have);
    CHECK(pos == len);
    if (!have) {
        puts_(o, "NOFRAME");
        return;
    }
    struct imap_command_text cmd = imap_reader_command(&reader);
    struct imap_parsed parsed;
    enum imap_parse_error err = imap_parser_parse(&cmd, flags, nodes, nodes_max, &parsed);
    *err_out = err;
    if (parsed_out != NULL) {
        *parsed_out = parsed;
    }
    /* Spans lie inside the command text. */
    for (size_t i = 0; i < parsed.node_count; i++) {
        struct span t = nodes[i].text;
        if (t.len > 0) {
            CHECK(t.ptr >= cmd.text && t.ptr + t.len <= cmd.text + cmd.len);
        }
    }
    if (err != IMAP_PARSE_OK) {
        puts_(o, "ERR:");
        puts_(o, imap_parse_error_name(err));
        return;
    }
    put(o, parsed.tag.ptr, parsed.tag.len);
    puts_(o, " ");
    puts_(o, imap_command_name(parsed.command));
    if (parsed.is_uid) {
        puts_(o, " UID");
    }
    puts_(o, " |");
    if (nodes[0].child_count > 0) {
        puts_(o, " ");
        render(&parsed, 0, o);
    }
}

static struct out out;

static void
check_parse(const char *file, int line, const char *in, size_t len, unsigned flags,
            const char *want, size_t want_len)
{
    enum imap_parse_error err;
    parse_render(in, len, flags, IMAP_PARSER_NODES_DEFAULT, &out, &err, NULL);
    unit_check_bytes(file, line, out.buf, out.len, want, want_len);
}

/* Strings may hold NUL bytes: lengths come from sizeof. */
#define P(in, want) \
    check_parse(__FILE__, __LINE__, in, sizeof(in) - 1, 0, want, sizeof(want) - 1)
#define PU(in, want) \
    check_parse(__FILE__, __LINE__, in, sizeof(in) - 1, IMAP_PARSE_F_UTF8, want, sizeof(want) - 1)

static void
test_head(void)
{
    P("a1 NOOP\r\n", "a1 NOOP |");
    P("a1 noop\r\n", "a1 NOOP |");
    P("a1 NOOP \r\n", "a1 NOOP |");
    P("a1 uid fetch 1 FLAGS\r\n", "a1 FETCH UID | 1 FLAGS");
    P("a1 UID NOOP\r\n", "ERR:command has no UID form");
    P("a1 UID\r\n", "ERR:missing command");
    P("a1 UID \r\n", "ERR:missing command");
    P("a1\r\n", "ERR:missing command");
    P("a1 \r\n", "ERR:missing command");
    P("\r\n", "ERR:invalid tag");
    P(" NOOP\r\n", "ERR:invalid tag");
    P("a+1 NOOP\r\n", "ERR:invalid tag");
    P("a*1 NOOP\r\n", "ERR:invalid tag");
    P("a1 FROB\r\n", "ERR:unknown command");
    P("a1 NOOP(\r\n", "ERR:syntax error");
    P("a]1 NOOP\r\n", "a]1 NOOP |");
}

static void
test_tokens(void)
{
    P("a1 LOGIN alice secret\r\n", "a1 LOGIN | alice secret");
    P("a1 LOGIN \"alice\" \"se\\\"c\\\\ret\"\r\n", "a1 LOGIN | \"alice\" \"se\\\"c\\\\ret\"");
    P("a1 LOGIN \"a\\b\" x\r\n", "ERR:syntax error");
    P("a1 LOGIN \"alice x\r\n", "ERR:syntax error");
    P("a1 LOGIN \"\" \"\"\r\n", "a1 LOGIN | \"\" \"\"");
    P("a1 LOGIN \"a\tb\" x\r\n", "a1 LOGIN | \"a\tb\" x");
    P("a1 LOGIN \"alice\"\"x\"\r\n", "ERR:syntax error");
    P("a1 LOGIN alice\"x\"\r\n", "ERR:syntax error");
    P("a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "a1 LOGIN | {5}alice {6}secret");
    P("a1 LOGIN {5+}\r\nalice {0}\r\n\r\n", "a1 LOGIN | {5}alice {0}");
    P("a1 LOGIN {5+}\r\nalice{0}\r\n\r\n", "ERR:syntax error");
    P("a1 LOGIN a{5+}\r\nalice\r\n", "ERR:syntax error");
    P("a1 LOGIN {5+}\r\nalicex\r\n", "ERR:syntax error");
    P("a1 LOGIN {2+}\r\na\0 x\r\n", "ERR:NUL in literal");
    P("a1 LOGIN ~{2+}\r\na\0 x\r\n", "a1 LOGIN | ~{2}a\0 x");
    P("a1 LOGIN {3} x\r\n", "ERR:syntax error");
    P("a1 SELECT nil\r\n", "a1 SELECT | NIL");
    P("a1 SELECT NILS\r\n", "a1 SELECT | NILS");
    P("a1 STORE 1 +FLAGS (\\Seen \\Deleted $Junk)\r\n",
      "a1 STORE | 1 +FLAGS (\\Seen \\Deleted $Junk)");
    P("a1 STORE 1 +FLAGS (Se\\en)\r\n", "ERR:syntax error");
    P("a1 SELECT [Gmail]/Sent\r\n", "a1 SELECT | [Gmail]/Sent");
    P("a1 LIST \"\" %\r\n", "a1 LIST | \"\" %");
    P("a1 LIST \"\" INBOX.*\r\n", "a1 LIST | \"\" INBOX.*");
    P("a1 SELECT caf\xc3\xa9\r\n", "ERR:8-bit characters not allowed");
    P("a1 SELECT \"caf\xc3\xa9\"\r\n", "ERR:8-bit characters not allowed");
    PU("a1 SELECT \"caf\xc3\xa9\"\r\n", "a1 SELECT | \"caf\xc3\xa9\"");
    PU("a1 SELECT \"caf\xc3\"\r\n", "ERR:8-bit characters not allowed");
    PU("a1 SELECT \"\xed\xa0\x80\"\r\n", "ERR:8-bit characters not allowed");
    P("a1 SELECT {5+}\r\ncaf\xc3\xa9\r\n", "a1 SELECT | {5}caf\xc3\xa9");
    P("a1 SELECT a\x01\r\n", "ERR:syntax error");
    P("a1 SELECT a\x7f\r\n", "ERR:syntax error");
    P("a1 LOGIN alice  secret\r\n", "a1 LOGIN | alice secret");
}

static void
test_lists(void)
{
    P("a1 X ()\r\n", "ERR:unknown command");
    P("a1 ID NIL\r\n", "a1 ID | NIL");
    P("a1 ID ()\r\n", "a1 ID | ()");
    P("a1 ID ((()))\r\n", "a1 ID | ((()))");
    P("a1 ID (a (b c) d)\r\n", "a1 ID | (a (b c) d)");
    P("a1 ID ( a )\r\n", "a1 ID | (a)");
    P("a1 ID (a\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 ID a)\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 ID (a))\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 ID (a)(b)\r\n", "ERR:syntax error");
    P("a1 ID (a)b\r\n", "ERR:syntax error");
    P("a1 ID ({3+}\r\nabc \"x\")\r\n", "a1 ID | ({3}abc \"x\")");
    P("a1 ID ({3+}\r\n))))\r\n", "a1 ID | ({3}))))");

    /* Nesting at max - 1, max, max + 1. */
    char line[256];
    for (int depth = IMAP_PARSER_DEPTH_MAX - 1; depth <= IMAP_PARSER_DEPTH_MAX + 1; depth++) {
        size_t n = (size_t)snprintf(line, sizeof(line), "a1 ID ");
        for (int i = 0; i < depth; i++) {
            line[n++] = '(';
        }
        for (int i = 0; i < depth; i++) {
            line[n++] = ')';
        }
        line[n++] = '\r';
        line[n++] = '\n';
        enum imap_parse_error err;
        parse_render(line, n, 0, IMAP_PARSER_NODES_DEFAULT, &out, &err, NULL);
        CHECK(err == (depth <= IMAP_PARSER_DEPTH_MAX ? IMAP_PARSE_OK : IMAP_PARSE_TOO_DEEP));
    }
    /* Deep nesting with no close: bounded, no recursion. */
    static char deep[60000];
    size_t n = (size_t)snprintf(deep, sizeof(deep), "a1 ID ");
    while (n < sizeof(deep) - 2) {
        deep[n++] = '(';
    }
    deep[n++] = '\r';
    deep[n++] = '\n';
    enum imap_parse_error err;
    parse_render(deep, n, 0, IMAP_PARSER_NODES_DEFAULT, &out, &err, NULL);
    CHECK(err == IMAP_PARSE_TOO_DEEP);

    /* Node count at max - 1, max, max + 1: root + k atoms. */
    for (size_t k = 9; k <= 11; k++) {
        n = (size_t)snprintf(deep, sizeof(deep), "a1 ID");
        for (size_t i = 0; i < k; i++) {
            n += (size_t)snprintf(deep + n, sizeof(deep) - n, " x");
        }
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\r\n");
        parse_render(deep, n, 0, 11, &out, &err, NULL);
        CHECK(err == (k + 1 <= 11 ? IMAP_PARSE_OK : IMAP_PARSE_TOO_MANY_NODES));
    }
    /* Many atoms: the node bound stops them. */
    n = (size_t)snprintf(deep, sizeof(deep), "a1 ID");
    while (n < 50000) {
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, " x");
    }
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "\r\n");
    parse_render(deep, n, 0, IMAP_PARSER_NODES_DEFAULT, &out, &err, NULL);
    CHECK(err == IMAP_PARSE_TOO_MANY_NODES);
}

static void
test_sections(void)
{
    P("a1 FETCH 1 BODY[]\r\n", "a1 FETCH | 1 BODY[]");
    P("a1 FETCH 1 (BODY.PEEK[])\r\n", "a1 FETCH | 1 (BODY.PEEK[])");
    P("a1 FETCH 1 BODY[1.2.HEADER.FIELDS (From To)]<0.100>\r\n",
      "a1 FETCH | 1 BODY[1.2.HEADER.FIELDS (From To)]<0.100>");
    P("a1 FETCH 1 body[TEXT]<4294967295.4294967295>\r\n",
      "a1 FETCH | 1 body[TEXT]<4294967295.4294967295>");
    P("a1 FETCH 1 BODY[TEXT]<4294967296.1>\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT]<0.0>\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT]<0>\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT]<.1>\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT]<1.2\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT]x\r\n", "ERR:syntax error");
    P("a1 FETCH 1 BODY[TEXT\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 FETCH 1 BODY[TEXT)]\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 FETCH 1 BODY[(a])\r\n", "ERR:unbalanced parentheses or brackets");
    P("a1 FETCH 1 (BODY[HEADER.FIELDS.NOT (X-A \"X-B\")] BINARY.PEEK[1]<0.10> BINARY.SIZE[2])\r\n",
      "a1 FETCH | 1 (BODY[HEADER.FIELDS.NOT (X-A \"X-B\")] BINARY.PEEK[1]<0.10> BINARY.SIZE[2])");
    P("a1 FETCH 1 (BODY[HEADER.FIELDS ({4+}\r\nFrom)])\r\n",
      "a1 FETCH | 1 (BODY[HEADER.FIELDS ({4}From)])");
    /* Only fetch names open a section; elsewhere brackets are atom text. */
    P("a1 FETCH 1 BODYSTRUCTURE[1]\r\n", "a1 FETCH | 1 BODYSTRUCTURE[1]");
    P("a1 FETCH 1 BODY\r\n", "a1 FETCH | 1 BODY");

    /* The section node's raw span and children. */
    static const char in[] = "a1 FETCH 1 BODY.PEEK[1.2.HEADER.FIELDS (From To)]<5.10>\r\n";
    enum imap_parse_error err;
    struct imap_parsed parsed;
    parse_render(in, sizeof(in) - 1, 0, IMAP_PARSER_NODES_DEFAULT, &out, &err, &parsed);
    CHECK(err == IMAP_PARSE_OK);
    uint32_t seq = imap_node_first_child(&parsed, 0);
    uint32_t value = 0;
    CHECK(imap_node_u32(&parsed.nodes[seq], &value) && value == 1);
    uint32_t sec = imap_node_next(&parsed, seq);
    const struct imap_node *node = &parsed.nodes[sec];
    CHECK(node->kind == IMAP_NODE_SECTION);
    CHECK(span_equals_nocase(node->text, "BODY.PEEK"));
    CHECK(span_equals_nocase(node->section, "1.2.HEADER.FIELDS (From To)"));
    CHECK(node->child_count == 2);
    CHECK(node->partial_offset == 5 && node->partial_len == 10);
    uint32_t spec = imap_node_first_child(&parsed, sec);
    CHECK(span_equals_nocase(parsed.nodes[spec].text, "1.2.HEADER.FIELDS"));
    uint32_t list = imap_node_next(&parsed, spec);
    CHECK(parsed.nodes[list].kind == IMAP_NODE_LIST && parsed.nodes[list].child_count == 2);
    CHECK(imap_node_next(&parsed, list) == IMAP_NODE_NONE);
    CHECK(imap_node_next(&parsed, sec) == IMAP_NODE_NONE);
}

static void
test_clients(void)
{
    /* Thunderbird (CONDSTORE). */
    P("1 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5)\r\n",
      "1 FETCH UID | 1:* (FLAGS) (CHANGEDSINCE 5)");
    /* mutt header fetch. */
    P("a0005 UID FETCH 1:5 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE "
      "FROM SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO "
      "REPLY-TO LINES LIST-POST X-LABEL)])\r\n",
      "a0005 FETCH UID | 1:5 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (DATE "
      "FROM SUBJECT TO CC MESSAGE-ID REFERENCES CONTENT-TYPE CONTENT-DESCRIPTION IN-REPLY-TO "
      "REPLY-TO LINES LIST-POST X-LABEL)])");
    /* RFC 3501 APPEND example; the 310-byte message is streamed. */
    static char append[512];
    int n = snprintf(append, sizeof(append),
                     "A003 APPEND saved-messages (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {310}\r\n"
                     "%0310d\r\n", 0);
    static const char want_append[] =
        "A003 APPEND | saved-messages (\\Seen) \"7-Feb-1994 21:52:25 -0800\" {S0}";
    check_parse(__FILE__, __LINE__, append, (size_t)n, 0, want_append, sizeof(want_append) - 1);
    P("A003 APPEND INBOX {5}\r\nhello\r\n", "A003 APPEND | INBOX {5}hello");
    P("a1 SEARCH CHARSET UTF-8 TEXT {4}\r\n\xd1\x82\xd0\xb5\r\n",
      "a1 SEARCH | CHARSET UTF-8 TEXT {4}\xd1\x82\xd0\xb5");
    P("a1 UID SEARCH RETURN (SAVE) UNSEEN\r\n", "a1 SEARCH UID | RETURN (SAVE) UNSEEN");
    P("a1 LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))\r\n",
      "a1 LIST | \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN))");
    P("a1 ID (\"name\" \"mbsync\")\r\n", "a1 ID | (\"name\" \"mbsync\")");
    P("a1 ID (\"name\" \"Mac OS X Mail\" \"version\" NIL)\r\n",
      "a1 ID | (\"name\" \"Mac OS X Mail\" \"version\" NIL)");
    P("a1 AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n",
      "a1 AUTHENTICATE | PLAIN AGFsaWNlAHNlY3JldA==");
    P("a1 ENABLE QRESYNC UTF8=ACCEPT\r\n", "a1 ENABLE | QRESYNC UTF8=ACCEPT");
    P("a1 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))\r\n",
      "a1 SELECT | INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))");
    P("a1 STATUS \"&AMk-t&AOk-\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)\r\n",
      "a1 STATUS | \"&AMk-t&AOk-\" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)");
    P("a1 UID STORE 1:3 +FLAGS.SILENT (\\Deleted)\r\n",
      "a1 STORE UID | 1:3 +FLAGS.SILENT (\\Deleted)");
    P("a1 UID MOVE 42 Trash\r\n", "a1 MOVE UID | 42 Trash");
    P("a1 IDLE\r\n", "a1 IDLE |");
    P("a1 APPEND Drafts (\\Draft) ~{3+}\r\na\0b\r\n", "a1 APPEND | Drafts (\\Draft) ~{3}a\0b");
}

static void
test_helpers(void)
{
    char buf[16];
    CHECK(imap_parser_unquote(SPAN_LITERAL("a\\\"b\\\\c"), buf, sizeof(buf)) == 5);
    CHECK(memcmp(buf, "a\"b\\c", 5) == 0);
    CHECK(imap_parser_unquote(SPAN_LITERAL("abc"), buf, 2) == -1);
    CHECK(imap_parser_unquote(SPAN_LITERAL(""), buf, 0) == 0);
    struct imap_node node = { .kind = IMAP_NODE_ATOM };
    uint32_t v;
    node.text = SPAN_LITERAL("4294967295");
    CHECK(imap_node_u32(&node, &v) && v == UINT32_MAX);
    node.text = SPAN_LITERAL("4294967296");
    CHECK(!imap_node_u32(&node, &v));
    node.text = SPAN_LITERAL("99999999999999999999999");
    CHECK(!imap_node_u32(&node, &v));
    node.text = SPAN_LITERAL("0");
    CHECK(imap_node_u32(&node, &v) && v == 0);
    node.text = SPAN_LITERAL("1a");
    CHECK(!imap_node_u32(&node, &v));
    CHECK(imap_node_is_string(&node));
    node.kind = IMAP_NODE_LITERAL;
    node.flags = IMAP_NODE_F_STREAMED;
    CHECK(!imap_node_is_string(&node));
    for (unsigned c = 0; c < IMAP_CMD_COUNT; c++) {
        CHECK(imap_command_name((enum imap_command)c) != NULL);
    }
}

int
main(void)
{
    test_head();
    test_tokens();
    test_lists();
    test_sections();
    test_clients();
    test_helpers();
    UNIT_DONE();
}
