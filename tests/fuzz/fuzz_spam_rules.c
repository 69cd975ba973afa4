/*
 * tests/fuzz/fuzz_spam_rules.c - libFuzzer harness for the spam rules
 * file parser (an operator's file, but one a typo or a bad merge can turn
 * into anything).
 *
 * Properties: the parser answers 0, -EINVAL, -E2BIG or -EFBIG; an error
 * message names a line that exists ("line N: " with 1 <= N <= lines);
 * on success every rule has a valid name, a finite weight within
 * SPAM_WEIGHT_ABS_MAX, a compiled pattern exactly when it is a header or
 * body rule, a zone when it is a DNS list rule, and at most
 * SPAM_RULES_MAX rules were added; parsing the same bytes twice agrees.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spam_rules.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++) {
        lines += copy[i] == '\n';
    }
    struct spam_rules *rules = NULL;
    char err[256] = "";
    int rc = spam_rules_parse(copy, size, &rules, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -EFBIG);
    if (rc != 0) {
        FUZZ_CHECK(rules == NULL);
        unsigned line = 0;
        FUZZ_CHECK(sscanf(err, "line %u: ", &line) == 1);
        FUZZ_CHECK(line >= 1 && line <= lines);
    } else {
        FUZZ_CHECK(rules != NULL);
        FUZZ_CHECK(rules->user_rule_count <= SPAM_RULES_MAX);
        for (size_t i = 0; i < rules->rule_count; i++) {
            const struct spam_rule *r = &rules->rules[i];
            size_t n = strlen(r->name);
            FUZZ_CHECK(n > 0 && n < SPAM_SYMBOL_NAME_BYTES);
            FUZZ_CHECK(isfinite(r->weight) && fabs(r->weight) <= SPAM_WEIGHT_ABS_MAX);
            bool wants_regex = r->kind == SPAM_RULE_HEADER || r->kind == SPAM_RULE_BODY;
            FUZZ_CHECK(r->has_regex == wants_regex);
            if (r->kind == SPAM_RULE_DNSBL || r->kind == SPAM_RULE_URIBL) {
                FUZZ_CHECK(r->zone[0] != '\0');
            }
            if (r->kind == SPAM_RULE_HEADER) {
                FUZZ_CHECK(r->field[0] != '\0');
            }
        }
    }
    struct spam_rules *again = NULL;
    int rc2 = spam_rules_parse(copy, size, &again, NULL, 0);
    FUZZ_CHECK(rc2 == rc);
    if (rules != NULL && again != NULL) {
        FUZZ_CHECK(again->rule_count == rules->rule_count);
    }
    spam_rules_destroy(&again);
    spam_rules_destroy(&rules);
    free(copy);
    return 0;
}
