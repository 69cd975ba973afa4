/*
 * tests/fuzz/fuzz_sieve.c - libFuzzer harness for the Sieve compiler
 * (filters/sieve_lex, sieve_parse, sieve_validate), which reads scripts
 * users upload through ManageSieve.
 *
 * The input is a script. Properties: the lexer alone gives tokens whose
 * lines never go down and never pass the script's line count, then EOF or
 * an error with a non-empty text; sieve_compile() on an exact-size heap
 * copy (so ASan sees any read past it) answers 0 with a tree of known
 * nodes only, or -EINVAL / -EFBIG with at least one error and no script;
 * every line in the tree or the errors is within the script; error texts
 * are UTF-8 (ManageSieve sends them); every string
 * is NUL-terminated at its length; the formatted error text has the
 * length sieve_errors_format() says; and compiling again gives the same
 * answer and the same first error.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/sieve_lex.c filters/sieve_parse.c filters/sieve_validate.c \
 *   core/assertions.c tests/fuzz/fuzz_sieve.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/utf8.h"
#include "filters/sieve_lex.h"
#include "filters/sieve_parse.h"
#include "filters/sieve_validate.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t lines_max;

static void
check_args(const struct sieve_arg *arg)
{
    for (; arg != NULL; arg = arg->next) {
        FUZZ_CHECK(arg->line >= 1 && arg->line <= lines_max);
        if (arg->type == SIEVE_ARG_STRING) {
            FUZZ_CHECK(arg->string_count == 1);
        }
        if (arg->type == SIEVE_ARG_STRING_LIST) {
            FUZZ_CHECK(arg->string_count >= 1 && arg->string_count <= SIEVE_LIST_ENTRIES_DEFAULT);
        }
        for (size_t i = 0; i < arg->string_count; i++) {
            const struct sieve_string *s = &arg->strings[i];
            FUZZ_CHECK(s->text != NULL && s->text[s->len] == '\0');
            FUZZ_CHECK(s->len <= SIEVE_STRING_BYTES_DEFAULT);
            FUZZ_CHECK(s->line >= 1 && s->line <= lines_max);
        }
        if (arg->type == SIEVE_ARG_TAG) {
            FUZZ_CHECK(arg->tag != NULL && arg->tag_id != SIEVE_TAG_UNKNOWN);
            if (arg->param != NULL) {
                FUZZ_CHECK(arg->param == arg->next && arg->param->is_tag_param);
            }
        }
    }
}

static void
check_nodes(const struct sieve_node *node, size_t *count, uint32_t depth)
{
    FUZZ_CHECK(depth <= SIEVE_BLOCK_DEPTH_DEFAULT + SIEVE_TEST_DEPTH_DEFAULT + 1);
    for (; node != NULL; node = node->next) {
        (*count)++;
        FUZZ_CHECK(node->id != SIEVE_ID_UNKNOWN);
        FUZZ_CHECK(node->line >= 1 && node->line <= lines_max);
        FUZZ_CHECK(node->positional_count <= SIEVE_POSITIONAL_MAX);
        FUZZ_CHECK(node->arg_count <= SIEVE_ARGUMENTS_MAX);
        for (size_t i = 0; i < node->positional_count; i++) {
            FUZZ_CHECK(node->positional[i] != NULL && !node->positional[i]->is_tag_param);
        }
        check_args(node->args);
        if (node->has_block) {
            FUZZ_CHECK(!node->is_test);
        }
        check_nodes(node->tests, count, depth + 1);
        check_nodes(node->block, count, depth + 1);
    }
}

static void
lex_alone(const char *text, size_t size)
{
    struct sieve_arena arena;
    sieve_arena_init(&arena, SIEVE_MEMORY_BYTES_DEFAULT);
    struct sieve_lexer lexer;
    sieve_lexer_init(&lexer, text, size, &arena, SIEVE_STRING_BYTES_DEFAULT);
    uint32_t line = 1;
    for (size_t n = 0; n <= size + 1; n++) { /* every token takes at least one byte */
        struct sieve_token token;
        int rc = sieve_lexer_next(&lexer, &token);
        if (rc != 0) {
            FUZZ_CHECK(rc == -EINVAL);
            FUZZ_CHECK(lexer.error[0] != '\0');
            FUZZ_CHECK(lexer.error_line >= 1 && lexer.error_line <= lines_max);
            break;
        }
        FUZZ_CHECK(token.line >= line && token.line <= lines_max);
        line = token.line;
        if (token.type == SIEVE_TOKEN_EOF) {
            break;
        }
        FUZZ_CHECK(n < size); /* no token without bytes */
    }
    sieve_arena_free(&arena);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    lines_max = 1;
    for (size_t i = 0; i < size; i++) {
        lines_max += text[i] == '\n';
    }
    lex_alone(text, size);

    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(text, size, NULL, &script, &errors);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -EFBIG);
    if (rc == 0) {
        FUZZ_CHECK(script != NULL && errors.count == 0);
        size_t count = 0;
        check_nodes(script->commands, &count, 0);
        FUZZ_CHECK(count <= script->node_count);
    } else {
        FUZZ_CHECK(script == NULL);
        FUZZ_CHECK(errors.count >= 1 && errors.count <= SIEVE_ERRORS_MAX);
        for (size_t i = 0; i < errors.count; i++) {
            FUZZ_CHECK(errors.items[i].line <= lines_max);
            size_t len = strnlen(errors.items[i].text, sizeof(errors.items[i].text));
            FUZZ_CHECK(len > 0 && len < sizeof(errors.items[i].text));
            FUZZ_CHECK(utf8_is_valid(errors.items[i].text, len)); /* ManageSieve sends it */
        }
    }
    static char formatted[SIEVE_ERRORS_TEXT_BYTES_MAX];
    size_t need = sieve_errors_format(&errors, "\r\n", formatted, sizeof(formatted));
    FUZZ_CHECK(need < sizeof(formatted));
    FUZZ_CHECK(strlen(formatted) == need);

    struct sieve_script *again = NULL;
    struct sieve_errors errors2;
    FUZZ_CHECK(sieve_compile(text, size, NULL, &again, &errors2) == rc);
    FUZZ_CHECK(errors2.count == errors.count);
    if (errors.count > 0) {
        FUZZ_CHECK(errors2.items[0].line == errors.items[0].line);
        FUZZ_CHECK(strcmp(errors2.items[0].text, errors.items[0].text) == 0);
    }
    sieve_script_free(&script);
    sieve_script_free(&again);
    FUZZ_CHECK(script == NULL && again == NULL);
    free(text);
    return 0;
}
