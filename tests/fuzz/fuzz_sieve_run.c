/*
 * tests/fuzz/fuzz_sieve_run.c - libFuzzer harness for the Sieve
 * interpreter (filters/sieve_run).
 *
 * The input is a script, a NUL byte, then a header block (the first 5
 * bytes after the NUL, when present, also give the envelope from/to
 * choice and the message size). Scripts that compile are run on an
 * exact-size heap copy of the header block (so ASan sees any read past
 * it) with small limits. Properties: sieve_run() answers 0 with 1 ..
 * SIEVE_RUN_ACTIONS_MAX + 1 actions, no two alike, each FILEINTO /
 * REDIRECT with a NUL-terminated target, at most 4 redirects and the
 * implicit keep only last; or < 0 with a non-empty error text and
 * exactly one implicit keep; and running again gives the same answer.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/sieve_lex.c filters/sieve_parse.c filters/sieve_validate.c \
 *   filters/sieve_run.c core/assertions.c tests/fuzz/fuzz_sieve_run.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_run.h"
#include "filters/sieve_validate.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_actions(int rc, const struct sieve_actions *a, const struct sieve_run_error *error)
{
    if (rc < 0) {
        FUZZ_CHECK(rc == -E2BIG || rc == -ENOTSUP || rc == -ENOMEM || rc == -EFBIG);
        FUZZ_CHECK(error->text[0] != '\0');
        FUZZ_CHECK(a->count == 1 && a->items[0].type == SIEVE_ACTION_KEEP &&
                   a->items[0].is_implicit);
        return;
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(a->count >= 1 && a->count <= SIEVE_RUN_ACTIONS_MAX + 1);
    size_t redirects = 0;
    for (size_t i = 0; i < a->count; i++) {
        const struct sieve_action *x = &a->items[i];
        if (x->is_implicit) {
            FUZZ_CHECK(x->type == SIEVE_ACTION_KEEP && i == a->count - 1);
        }
        if (x->type == SIEVE_ACTION_FILEINTO || x->type == SIEVE_ACTION_REDIRECT) {
            FUZZ_CHECK(x->target != NULL && x->target[x->target_len] == '\0');
        }
        redirects += x->type == SIEVE_ACTION_REDIRECT;
        for (size_t j = 0; j < i; j++) {
            const struct sieve_action *y = &a->items[j];
            FUZZ_CHECK(!(x->type == y->type && x->target_len == y->target_len &&
                         (x->target_len == 0 ||
                          memcmp(x->target, y->target, x->target_len) == 0)));
        }
    }
    FUZZ_CHECK(redirects <= SIEVE_RUN_REDIRECTS_DEFAULT);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t script_len = nul != NULL ? (size_t)(nul - data) : size;
    size_t rest = nul != NULL ? size - script_len - 1 : 0;
    const uint8_t *tail = nul != NULL ? nul + 1 : data + size;

    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    if (sieve_compile((const char *)data, script_len, NULL, &script, &errors) != 0) {
        return 0;
    }
    uint8_t opts[5] = {0};
    size_t opts_len = rest < sizeof(opts) ? rest : sizeof(opts);
    memcpy(opts, tail, opts_len);
    tail += opts_len;
    rest -= opts_len;
    char *header = malloc(rest > 0 ? rest : 1);
    FUZZ_CHECK(header != NULL);
    memcpy(header, tail, rest);
    static const char *const froms[] = {NULL, "", "a@b.example", "\"x y\"@[1.2.3.4]"};
    struct sieve_message message = {
        .header = header,
        .header_len = rest,
        .envelope_from = froms[opts[0] & 3],
        .envelope_to = (opts[0] & 4) ? "rcpt@example.org" : NULL,
        .auth_user = (opts[0] & 8) ? "user" : NULL,
        .size_bytes = (uint64_t)opts[1] << 24 | (uint64_t)opts[2] << 16 |
                      (uint64_t)opts[3] << 8 | opts[4],
    };
    struct sieve_run_limits limits = {.steps_max = 2000, .match_work_max = 200000};
    struct sieve_actions a1;
    struct sieve_actions a2;
    struct sieve_run_error e1;
    struct sieve_run_error e2;
    sieve_actions_init(&a1);
    int rc1 = sieve_run(script, &message, NULL, &limits, &a1, &e1);
    sieve_actions_finish(&a1);
    check_actions(rc1, &a1, &e1);
    sieve_actions_init(&a2);
    int rc2 = sieve_run(script, &message, NULL, &limits, &a2, &e2);
    sieve_actions_finish(&a2);
    FUZZ_CHECK(rc1 == rc2 && a1.count == a2.count);
    for (size_t i = 0; i < a1.count && i < a2.count; i++) {
        FUZZ_CHECK(a1.items[i].type == a2.items[i].type &&
                   a1.items[i].target_len == a2.items[i].target_len);
    }
    sieve_actions_free(&a1);
    sieve_actions_free(&a2);
    free(header);
    sieve_script_free(&script);
    return 0;
}
