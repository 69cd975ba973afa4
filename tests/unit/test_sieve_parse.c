/*
 * tests/unit/test_sieve_parse.c - the Sieve parser (filters/sieve_parse)
 * on whole scripts: the tree's shape (commands, arguments, tests, test
 * lists, blocks, each with its line), each syntax error with its exact
 * line and text, the bounds on block nesting, test nesting, string-list
 * entries, nodes, arguments and arena memory at max - 1 / max / max + 1,
 * and the error list and its formatting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "filters/sieve_parse.h"
#include "tests/unit/unit.h"

int main(void);

static struct sieve_script script;
static struct sieve_errors errors;
static struct sieve_limits limits;

static int
parse(const char *src)
{
    sieve_arena_free(&script.arena);
    memset(&script, 0, sizeof(script));
    sieve_arena_init(&script.arena, limits.memory_bytes_max);
    sieve_errors_init(&errors, SIEVE_ERRORS_MAX);
    return sieve_parse(&script, src, strlen(src), &limits, &errors);
}

/* Parsing must fail, the first error being this text on this line. */
static void
check_error(const char *src, uint32_t line, const char *text)
{
    CHECK(parse(src) == -EINVAL);
    CHECK(errors.count >= 1);
    CHECK(errors.items[0].line == line);
    CHECK_STR(errors.items[0].text, text);
}

static void
test_shape(void)
{
    const char *src = "require [\"fileinto\", \"copy\"];\n"
                      "if anyof (header :is \"x\" [\"a\", \"b\"],\n"
                      "          not exists \"z\") {\n"
                      "  fileinto :copy \"box\";\n"
                      "} elsif size :over 10K { stop; }\n"
                      "else { keep; }\n";
    CHECK(parse(src) == 0);
    CHECK(errors.count == 0);
    CHECK(script.command_count == 4);
    struct sieve_node *req = script.commands;
    CHECK_STR(req->name, "require");
    CHECK(req->line == 1 && !req->is_test && req->arg_count == 1);
    CHECK(req->args->type == SIEVE_ARG_STRING_LIST && req->args->string_count == 2);
    CHECK_STR(req->args->strings[1].text, "copy");

    struct sieve_node *ifc = req->next;
    CHECK_STR(ifc->name, "if");
    CHECK(ifc->line == 2 && ifc->test_count == 1 && !ifc->is_test_list);
    CHECK(ifc->has_block && ifc->block_count == 1);
    struct sieve_node *anyof = ifc->tests;
    CHECK_STR(anyof->name, "anyof");
    CHECK(anyof->is_test && anyof->is_test_list && anyof->test_count == 2);
    struct sieve_node *header = anyof->tests;
    CHECK_STR(header->name, "header");
    CHECK(header->line == 2 && header->arg_count == 3);
    CHECK(header->args->type == SIEVE_ARG_TAG);
    CHECK_STR(header->args->tag, "is");
    CHECK(header->args->next->type == SIEVE_ARG_STRING);
    CHECK(header->args->next->next->type == SIEVE_ARG_STRING_LIST);
    CHECK(header->args->next->next->string_count == 2);
    struct sieve_node *not = header->next;
    CHECK_STR(not ->name, "not");
    CHECK(not ->line == 3 && not ->test_count == 1 && !not ->is_test_list);
    CHECK_STR(not ->tests->name, "exists");
    CHECK(not ->tests->tests == NULL);
    struct sieve_node *fileinto = ifc->block;
    CHECK_STR(fileinto->name, "fileinto");
    CHECK(fileinto->line == 4 && fileinto->arg_count == 2 && !fileinto->has_block);

    struct sieve_node *elsif = ifc->next;
    CHECK_STR(elsif->name, "elsif");
    CHECK(elsif->line == 5);
    CHECK(elsif->tests->args->type == SIEVE_ARG_TAG);
    CHECK(elsif->tests->args->next->type == SIEVE_ARG_NUMBER);
    CHECK(elsif->tests->args->next->number == 10240);
    struct sieve_node *els = elsif->next;
    CHECK_STR(els->name, "else");
    CHECK(els->line == 6 && els->block_count == 1 && els->next == NULL);
    /* 7 commands, 5 tests, 9 arguments (tags and numbers count). */
    CHECK(script.node_count == 7 + 5 + 9);

    /* Empty scripts and empty blocks are fine. */
    CHECK(parse("") == 0 && script.command_count == 0);
    CHECK(parse("# nothing\n/* at all */\n") == 0 && script.command_count == 0);
    CHECK(parse("if true {}") == 0 && script.commands->has_block);
    CHECK(script.commands->block_count == 0);
}

static void
test_syntax_errors(void)
{
    check_error("keep\n)", 2,
                "expected end of command ';' or the beginning of a compound block '{', but "
                "found ')'");
    /* "keep stop;" is keep with the test stop: the validator refuses it. */
    CHECK(parse("keep stop;") == 0);
    CHECK(script.commands->test_count == 1);
    check_error("keep;\nfileinto \"x\"", 2,
                "expected end of command ';' or the beginning of a compound block '{', but "
                "found end of file");
    check_error("keep;\n}\n", 2, "unexpected '}' found at (the presumed) end of file");
    check_error("if true {\n keep;\n", 3,
                "expected end of compound block '}', but found end of file");
    check_error("if true { keep; ]", 1, "expected end of compound block '}', but found ']'");
    check_error("fileinto \"abc;\n", 2,
                "end of file before end of quoted string started at line 1");
    check_error("vacation text:\nbody\n", 3, "end of file before end of multi-line string");
    check_error("header [\"a\" \"b\"];", 1,
                "expected ',' or end of string list ']', but found string");
    check_error("header [];", 1, "expected string after '[' in string list, but found ']'");
    check_error("header [\"a\",];", 1, "expected string after ',' in string list, but found ']'");
    check_error("if anyof () {}", 1,
                "expected test identifier after '(' in test list, but found ')'");
    check_error("if anyof (true,) {}", 1,
                "expected test identifier after ',' in test list, but found ')'");
    check_error("if anyof (true; false) {}", 1,
                "expected ',' or end of test list ')', but found ';'");
    check_error("\"x\";", 1, "unexpected string found at (the presumed) end of file");
    check_error("keep;;", 1, "unexpected ';' found at (the presumed) end of file");
    check_error("redirect \"a\" :copy ,", 1,
                "expected end of command ';' or the beginning of a compound block '{', but "
                "found ','");
    check_error("size :over 99999999999999999999;", 1,
                "number exceeds integer limits (max 18446744073709551615)");
}

/* "if true { if true { ... keep; } }" with depth blocks. */
static char *
nested_blocks(uint32_t depth)
{
    size_t size = (size_t)depth * 12 + 16;
    char *s = malloc(size);
    if (s == NULL) {
        abort();
    }
    size_t n = 0;
    for (uint32_t i = 0; i < depth; i++) {
        n += (size_t)snprintf(s + n, size - n, "if true {\n");
    }
    n += (size_t)snprintf(s + n, size - n, "keep;");
    for (uint32_t i = 0; i < depth; i++) {
        n += (size_t)snprintf(s + n, size - n, "}");
    }
    return s;
}

/* "if not not ... true {}" with depth tests in all (the if's test is 1). */
static char *
nested_tests(uint32_t depth, bool is_list)
{
    size_t size = (size_t)depth * 8 + 32;
    char *s = malloc(size);
    if (s == NULL) {
        abort();
    }
    size_t n = (size_t)snprintf(s, size, "if ");
    for (uint32_t i = 1; i < depth; i++) {
        n += (size_t)snprintf(s + n, size - n, is_list ? "anyof(" : "not ");
    }
    n += (size_t)snprintf(s + n, size - n, "true");
    for (uint32_t i = 1; is_list && i < depth; i++) {
        n += (size_t)snprintf(s + n, size - n, ")");
    }
    (void)snprintf(s + n, size - n, " {}");
    return s;
}

static void
test_nesting_bounds(void)
{
    for (uint32_t depth = SIEVE_BLOCK_DEPTH_DEFAULT - 1; depth <= SIEVE_BLOCK_DEPTH_DEFAULT + 1;
         depth++) {
        char *s = nested_blocks(depth);
        if (depth <= SIEVE_BLOCK_DEPTH_DEFAULT) {
            CHECK(parse(s) == 0);
        } else {
            check_error(s, depth, "cannot nest command blocks deeper than 32 levels");
        }
        free(s);
    }
    for (uint32_t depth = SIEVE_TEST_DEPTH_DEFAULT - 1; depth <= SIEVE_TEST_DEPTH_DEFAULT + 1;
         depth++) {
        for (int is_list = 0; is_list <= 1; is_list++) {
            char *s = nested_tests(depth, is_list != 0);
            if (depth <= SIEVE_TEST_DEPTH_DEFAULT) {
                CHECK(parse(s) == 0);
            } else {
                check_error(s, 1, "cannot nest tests deeper than 32 levels");
            }
            free(s);
        }
    }
    /* A lower limit is obeyed too. */
    limits.block_depth_max = 2;
    CHECK(parse("if true { if true { keep; } }") == 0);
    check_error("if true { if true { if true { keep; } } }", 1,
                "cannot nest command blocks deeper than 2 levels");
    limits.block_depth_max = SIEVE_BLOCK_DEPTH_DEFAULT;
}

static void
test_list_and_node_bounds(void)
{
    limits.list_entries_max = 3;
    CHECK(parse("exists [\"a\", \"b\"];") == 0);
    CHECK(parse("exists [\"a\", \"b\", \"c\"];") == 0);
    check_error("exists [\"a\", \"b\", \"c\",\n \"d\"];", 2,
                "string list has too many entries (more than 3)");
    limits.list_entries_max = SIEVE_LIST_ENTRIES_DEFAULT;

    /* A list growing past its first arrays keeps every string. */
    CHECK(parse("exists [\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"];") == 0);
    CHECK(script.commands->args->string_count == 10);
    CHECK_STR(script.commands->args->strings[9].text, "9");
    CHECK_STR(script.commands->args->strings[4].text, "4");

    /* keep; = 1 node; "fileinto "x";" = 2. */
    limits.node_count_max = 4;
    CHECK(parse("keep; keep; fileinto \"x\";") == 0);
    CHECK(script.node_count == 4);
    check_error("keep; keep; keep;\nfileinto \"x\";", 2,
                "script has too many commands, tests and arguments (more than 4)");
    limits.node_count_max = SIEVE_NODES_DEFAULT;

    /* 32 arguments per command, then no more. */
    char src[512];
    size_t n = (size_t)snprintf(src, sizeof(src), "x");
    for (int i = 0; i < 32; i++) {
        n += (size_t)snprintf(src + n, sizeof(src) - n, " %d", i);
    }
    (void)snprintf(src + n, sizeof(src) - n, ";");
    CHECK(parse(src) == 0);
    CHECK(script.commands->arg_count == 32);
    (void)snprintf(src + n, sizeof(src) - n, " 32;");
    check_error(src, 1, "too many arguments for command 'x'");

    /* The arena bound turns into an error, not a crash. */
    limits.memory_bytes_max = 4096;
    char *big = malloc(20000);
    if (big == NULL) {
        abort();
    }
    n = 0;
    for (int i = 0; i < 500; i++) {
        n += (size_t)snprintf(big + n, 20000 - n, "keep;\n");
    }
    CHECK(parse(big) == -EINVAL);
    CHECK(errors.count == 1);
    CHECK_STR(errors.items[0].text, "script needs too much memory (more than 4096 bytes)");
    free(big);
    limits.memory_bytes_max = SIEVE_MEMORY_BYTES_DEFAULT;
}

static void
test_recovery(void)
{
    /* Each broken command is reported; parsing goes on after its ';' or block. */
    const char *src = "keep\n);\n"                        /* 2: a stray ')' */
                      "if header [\"a\" \"b\"] \"c\" {\n" /* 3: missing ',' */
                      "  stop;\n"
                      "}\n"
                      "if true {\n"
                      "  discard (;\n" /* 7: nothing after '(' */
                      "  stop;\n"
                      "}\n"
                      "redirect \"x@y.z\" ,;\n" /* 10 */
                      "keep;\n";
    CHECK(parse(src) == -EINVAL);
    CHECK(errors.count == 4);
    CHECK(errors.items[0].line == 2);
    CHECK(errors.items[1].line == 3);
    CHECK_STR(errors.items[1].text, "expected ',' or end of string list ']', but found string");
    CHECK(errors.items[2].line == 7);
    CHECK_STR(errors.items[2].text,
              "expected test identifier after '(' in test list, but found ';'");
    CHECK(errors.items[3].line == 10);
    CHECK(!errors.is_truncated);

    /* A ';' forgotten before a block's '}' is one error, then the block ends. */
    CHECK(parse("if true {\n  keep\n}\nstop;\n") == -EINVAL);
    CHECK(errors.count == 1 && errors.items[0].line == 3);

    /* The error list bounds recovery. */
    char many[1024];
    size_t n = 0;
    for (int i = 0; i < 20; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "keep ];\n");
    }
    CHECK(parse(many) == -EINVAL);
    CHECK(errors.count == SIEVE_ERRORS_MAX);
    CHECK(errors.items[9].line == 10);

    /* A lexical error ends parsing: nothing after it is looked at. */
    CHECK(parse("keep )\n\"open\nkeep ]\n") == -EINVAL);
    CHECK(errors.count == 2);
    CHECK_STR(errors.items[1].text, "end of file before end of quoted string started at line 2");
}

static void
test_errors_format(void)
{
    struct sieve_errors list;
    sieve_errors_init(&list, 2);
    char buf[256];
    CHECK(sieve_errors_format(&list, "\n", buf, sizeof(buf)) == 0);
    CHECK_STR(buf, "");
    sieve_errors_add(&list, 3, "unknown command '%s' (only reported once at first occurrence)",
                     "fileintoo");
    sieve_errors_add(&list, 0, "script is too large");
    sieve_errors_add(&list, 9, "not kept");
    CHECK(list.count == 2 && list.is_truncated);
    size_t len = sieve_errors_format(&list, "\r\n", buf, sizeof(buf));
    const char *want = "line 3: error: unknown command 'fileintoo' (only reported once at first "
                       "occurrence).\r\n"
                       "error: script is too large.\r\n"
                       "error: more errors follow (only the first 2 are shown).\r\n";
    CHECK_STR(buf, want);
    CHECK(len == strlen(want));
    /* A small buffer is cut, NUL-terminated, and the needed length told. */
    char small[10];
    CHECK(sieve_errors_format(&list, "\r\n", small, sizeof(small)) == strlen(want));
    CHECK_STR(small, "line 3: e");
    /* The longest possible text fits SIEVE_ERRORS_TEXT_BYTES_MAX. */
    struct sieve_errors full;
    sieve_errors_init(&full, SIEVE_ERRORS_MAX);
    char long_text[SIEVE_ERROR_TEXT_BYTES * 2];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    for (size_t i = 0; i <= SIEVE_ERRORS_MAX; i++) {
        sieve_errors_add(&full, UINT32_MAX, "%s", long_text);
    }
    CHECK(full.count == SIEVE_ERRORS_MAX && full.is_truncated);
    CHECK(strlen(full.items[0].text) == SIEVE_ERROR_TEXT_BYTES - 1);
    static char whole[SIEVE_ERRORS_TEXT_BYTES_MAX];
    CHECK(sieve_errors_format(&full, "\r\n", whole, sizeof(whole)) < sizeof(whole));
    /* A cut never leaves half a UTF-8 character. */
    struct sieve_errors cut;
    sieve_errors_init(&cut, 1);
    /* "xx" then e-acute (2 bytes) over and over: byte 239 is a lead byte. */
    char accents[SIEVE_ERROR_TEXT_BYTES + 8];
    accents[0] = 'x';
    accents[1] = 'x';
    size_t at = 2;
    while (at + 2 < sizeof(accents)) {
        accents[at++] = (char)0xc3;
        accents[at++] = (char)0xa9;
    }
    accents[at] = '\0';
    sieve_errors_add(&cut, 1, "%s", accents);
    CHECK(strlen(cut.items[0].text) == SIEVE_ERROR_TEXT_BYTES - 2);
    CHECK(utf8_is_valid(cut.items[0].text, strlen(cut.items[0].text)));
    /* count_max is clamped to 1..SIEVE_ERRORS_MAX. */
    sieve_errors_init(&list, 0);
    CHECK(list.count_max == 1);
    sieve_errors_init(&list, 1000);
    CHECK(list.count_max == SIEVE_ERRORS_MAX);
}

int
main(void)
{
    sieve_limits_default(&limits);
    sieve_arena_init(&script.arena, limits.memory_bytes_max);
    test_shape();
    test_syntax_errors();
    test_nesting_bounds();
    test_list_and_node_bounds();
    test_recovery();
    test_errors_format();
    sieve_arena_free(&script.arena);
    UNIT_DONE();
}
