/*
 * tests/unit/test_spam_rules.c - the spam rules file parser: the shipped
 * etc/spam.rules parses and repeats the built-in weights, a good file of
 * every directive, each error naming its line, and the bounds (line
 * length, pattern length, rule count, zone count, weight) at max and
 * max + 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spam_rules.h"
#include "tests/unit/unit.h"

int main(void);

static int
parse(const char *text, struct spam_rules **rules, char *err, size_t err_bytes)
{
    return spam_rules_parse(text, strlen(text), rules, err, err_bytes);
}

/* The error of text, which must fail with rc. */
static void
check_error(const char *text, int rc_want, const char *err_want)
{
    struct spam_rules *rules = NULL;
    char err[256];
    int rc = parse(text, &rules, err, sizeof(err));
    CHECK(rc == rc_want);
    CHECK(rules == NULL);
    if (strcmp(err, err_want) != 0) {
        fprintf(stderr, "  got error '%s', want '%s'\n", err, err_want);
    }
    CHECK_STR(err, err_want);
}

static void
test_defaults(void)
{
    struct spam_rules *rules = NULL;
    CHECK(spam_rules_parse("", 0, &rules, NULL, 0) == 0);
    CHECK(rules != NULL);
    CHECK(rules->user_rule_count == 0);
    CHECK(spam_rules_weight(rules, "MISSING_DATE") == 1.0);
    CHECK(spam_rules_weight(rules, "MISSING_MID") == 2.5);
    CHECK(spam_rules_weight(rules, "BAYES_HAM") == -3.0);
    CHECK(spam_rules_weight(rules, "NO_SUCH") == 0.0);
    CHECK(spam_rules_find(rules, "NO_SUCH") == NULL);
    CHECK(spam_rules_find(rules, "GTUBE")->kind == SPAM_RULE_BUILTIN);
    spam_rules_destroy(&rules);
    CHECK(rules == NULL);
    spam_rules_destroy(&rules); /* NULL is fine */
}

static void
test_shipped_file(void)
{
    struct spam_rules *rules = NULL;
    struct spam_rules *defaults = NULL;
    char err[256] = "";
    int rc = spam_rules_load(SPAM_SOURCE_ROOT "/etc/spam.rules", &rules, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "  etc/spam.rules: %s\n", err);
    }
    CHECK(rc == 0);
    CHECK(spam_rules_parse("", 0, &defaults, NULL, 0) == 0);
    if (rules != NULL && defaults != NULL) {
        CHECK(rules->user_rule_count >= 3);
        /* The file states the compiled-in weights, so an operator who edits
         * it starts from what runs without it. */
        for (size_t i = 0; i < defaults->rule_count; i++) {
            const struct spam_rule *d = &defaults->rules[i];
            double w = spam_rules_weight(rules, d->name);
            if (w != d->weight) {
                fprintf(stderr, "  %s: file %.2f, built-in %.2f\n", d->name, w, d->weight);
            }
            CHECK(w == d->weight);
        }
        const struct spam_rule *r = spam_rules_find(rules, "LOTTERY_WINNER");
        CHECK(r != NULL && r->kind == SPAM_RULE_BODY && r->has_regex);
    }
    spam_rules_destroy(&rules);
    spam_rules_destroy(&defaults);
    CHECK(spam_rules_load("/nonexistent/spam.rules", &rules, err, sizeof(err)) == -ENOENT);
    CHECK(strstr(err, "/nonexistent/spam.rules") != NULL);
}

static void
test_good_file(void)
{
    const char *text = "# comment\r\n"
                       "\n"
                       "   \t  # indented comment\n"
                       "score MISSING_DATE 3.5   # trailing comment\n"
                       "score BAYES_HAM -4\n"
                       "header SUBJ_FREE 2.25 Subject   free   (money|cash)  \n"
                       "body BODY_WIN 1e0 you have won\n"
                       "dnsbl RBL_TEST_2 4.0 Bl.Example.ORG. 127.0.0.2\n"
                       "dnsbl RBL_TEST 3.0 bl.example.org\n"
                       "uribl URI_TEST 5 uri.example.net\n";
    struct spam_rules *rules = NULL;
    char err[256] = "";
    CHECK(parse(text, &rules, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(rules != NULL);
    if (rules == NULL) {
        return;
    }
    CHECK(rules->user_rule_count == 5);
    CHECK(spam_rules_weight(rules, "MISSING_DATE") == 3.5);
    CHECK(spam_rules_weight(rules, "BAYES_HAM") == -4.0);
    const struct spam_rule *h = spam_rules_find(rules, "SUBJ_FREE");
    CHECK(h != NULL && h->kind == SPAM_RULE_HEADER && h->weight == 2.25);
    CHECK(h != NULL && strcmp(h->field, "Subject") == 0 && h->line == 6);
    /* The pattern is the rest of the line, inner blanks kept. */
    CHECK(h != NULL && regexec(&h->regex, "get FREE   Money now", 0, NULL, 0) == 0);
    CHECK(h != NULL && regexec(&h->regex, "get free money now", 0, NULL, 0) != 0);
    const struct spam_rule *b = spam_rules_find(rules, "BODY_WIN");
    CHECK(b != NULL && b->kind == SPAM_RULE_BODY && b->weight == 1.0);
    const struct spam_rule *d2 = spam_rules_find(rules, "RBL_TEST_2");
    CHECK(d2 != NULL && d2->kind == SPAM_RULE_DNSBL && d2->has_code && d2->code == 0x7f000002u);
    CHECK(d2 != NULL && strcmp(d2->zone, "bl.example.org") == 0);
    const struct spam_rule *d = spam_rules_find(rules, "RBL_TEST");
    CHECK(d != NULL && !d->has_code);
    const struct spam_rule *u = spam_rules_find(rules, "URI_TEST");
    CHECK(u != NULL && u->kind == SPAM_RULE_URIBL && u->weight == 5.0);
    spam_rules_destroy(&rules);
}

static void
test_errors(void)
{
    check_error("frobnicate X 1\n", -EINVAL, "line 1: unknown directive 'frobnicate'");
    check_error("\n\nscore NOPE 1\n", -EINVAL, "line 3: unknown symbol 'NOPE'");
    check_error("score MISSING_DATE\n", -EINVAL, "line 1: 'score' needs a symbol and a weight");
    check_error("score MISSING_DATE one\n", -EINVAL, "line 1: bad weight 'one'");
    check_error("score MISSING_DATE nan\n", -EINVAL, "line 1: bad weight 'nan'");
    check_error("score MISSING_DATE 1 2\n", -EINVAL,
                "line 1: 'score' takes a symbol and a weight only");
    check_error("score MISSING_DATE 1000.5\n", -EINVAL, "line 1: weight 1000.5 beyond +-1000");
    check_error("body lower 1 x\n", -EINVAL,
                "line 1: bad symbol name 'lower' (1..63 of A-Z 0-9 _)");
    check_error("body MISSING_DATE 1 x\n", -EINVAL,
                "line 1: 'MISSING_DATE' is a built-in symbol (use 'score')");
    check_error("body A 1 x\nbody A 2 y\n", -EINVAL, "line 2: symbol 'A' already defined on line 1");
    check_error("body A 1\n", -EINVAL, "line 1: 'body' needs a regex");
}

/* regerror's wording belongs to glibc: check the prefix only. */
static void
test_regex_errors(void)
{
    struct spam_rules *rules = NULL;
    char err[256];
    CHECK(parse("\nbody A 1 (unclosed\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK(strncmp(err, "line 2: bad regex: ", 19) == 0);
    CHECK(parse("body A 1 (a)\\1\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: back-references are not allowed");
    /* An escaped backslash before a digit is no back-reference. */
    CHECK(parse("body A 1 a\\\\1\n", &rules, err, sizeof(err)) == 0);
    CHECK(rules != NULL && regexec(&rules->rules[rules->rule_count - 1].regex, "xa\\1", 0, NULL,
                                   0) == 0);
    spam_rules_destroy(&rules);
    /* Patterns whose cost is not bounded by the bytes they read. */
    CHECK(parse("body A 1 (a++++|b)+c\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: a quantifier may not follow a quantifier");
    CHECK(parse("body A 1 a{2}*\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: a quantifier may not follow a quantifier");
    CHECK(parse("body A 1 (a{10}){101}\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: repetition counts multiply past 1000");
    CHECK(parse("body A 1 (a{10}){100} [+*]+ \\++ x*[]a]* [[:alpha:]]+ (b+)+\n", &rules,
                err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
    CHECK(parse("body A 1 x{2,}y{,3}\n", &rules, err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
    CHECK(parse("body A 1 (a{,100}){,11}\n", &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: repetition counts multiply past 1000");
    check_error("header A 1\n", -EINVAL, "line 1: 'header' needs a field name and a regex");
    check_error("header A\n", -EINVAL, "line 1: 'header' needs a symbol and a weight");
    check_error("header A 1 Subject\n", -EINVAL, "line 1: 'header' needs a regex");
    check_error("header A 1 Sub:ject x\n", -EINVAL, "line 1: bad field name 'Sub:ject'");
    check_error("dnsbl A 1\n", -EINVAL, "line 1: 'dnsbl' needs a zone");
    check_error("dnsbl A 1 bad..zone\n", -EINVAL, "line 1: bad zone 'bad..zone'");
    check_error("dnsbl A 1 ok.zone 10.0.0.1\n", -EINVAL,
                "line 1: bad return code '10.0.0.1' (want 127.0.0.N)");
    check_error("dnsbl A 1 ok.zone 127.0.0.256\n", -EINVAL,
                "line 1: bad return code '127.0.0.256' (want 127.0.0.N)");
    check_error("uribl A 1 ok.zone 127.0.0.2 extra\n", -EINVAL,
                "line 1: 'uribl' takes a zone and at most one return code");
    CHECK(spam_rules_parse("body A 1 x\0y\n", 13, &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: NUL byte");
}

static void
test_bounds(void)
{
    char err[256];
    struct spam_rules *rules = NULL;
    /* Line length: max passes, max + 1 fails. */
    size_t max = SPAM_RULES_LINE_BYTES_MAX;
    char *line = malloc(max + 2);
    memset(line, ' ', max + 1);
    memcpy(line, "# x", 3);
    line[max] = '\0';
    CHECK(spam_rules_parse(line, max, &rules, err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
    CHECK(spam_rules_parse(line, max + 1, &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: line over 2048 bytes");
    free(line);

    /* Pattern length. */
    char pat[SPAM_REGEX_BYTES_MAX + 32];
    int n = snprintf(pat, sizeof(pat), "body A 1 ");
    memset(pat + n, 'a', SPAM_REGEX_BYTES_MAX);
    pat[n + SPAM_REGEX_BYTES_MAX] = '\0';
    CHECK(parse(pat, &rules, err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
    pat[n + SPAM_REGEX_BYTES_MAX] = 'a';
    pat[n + SPAM_REGEX_BYTES_MAX + 1] = '\0';
    CHECK(parse(pat, &rules, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "line 1: regex over 1024 bytes");

    /* Rule count. */
    size_t cap = (SPAM_RULES_MAX + 1) * 32;
    char *text = malloc(cap);
    size_t len = 0;
    for (unsigned i = 0; i < SPAM_RULES_MAX; i++) {
        len += (size_t)snprintf(text + len, cap - len, "body R%u 1 w%u\n", i, i);
    }
    CHECK(spam_rules_parse(text, len, &rules, err, sizeof(err)) == 0);
    CHECK(rules != NULL && rules->user_rule_count == SPAM_RULES_MAX);
    spam_rules_destroy(&rules);
    len += (size_t)snprintf(text + len, cap - len, "body EXTRA 1 w\n");
    CHECK(spam_rules_parse(text, len, &rules, err, sizeof(err)) == -E2BIG);
    CHECK_STR(err, "line 513: more than 512 rules");
    free(text);

    /* Zones: 16 distinct dnsbl zones, many rules in one zone are fine. */
    char zones[4096];
    len = 0;
    for (unsigned i = 0; i < SPAM_DNS_ZONES_MAX; i++) {
        len += (size_t)snprintf(zones + len, sizeof(zones) - len, "dnsbl Z%u 1 z%u.example\n", i,
                                i);
    }
    len += (size_t)snprintf(zones + len, sizeof(zones) - len, "dnsbl Y 1 z0.example 127.0.0.3\n");
    len += (size_t)snprintf(zones + len, sizeof(zones) - len, "uribl U 1 z99.example\n");
    CHECK(spam_rules_parse(zones, len, &rules, err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
    len += (size_t)snprintf(zones + len, sizeof(zones) - len, "dnsbl X 1 z99.example\n");
    CHECK(spam_rules_parse(zones, len, &rules, err, sizeof(err)) == -E2BIG);
    CHECK_STR(err, "line 19: more than 16 dnsbl zones");

    /* File size. */
    CHECK(spam_rules_parse("", SPAM_RULES_FILE_BYTES_MAX + 1, &rules, err, sizeof(err)) ==
          -EFBIG);
    /* Weight at the bound. */
    CHECK(parse("score MISSING_DATE -1000\n", &rules, err, sizeof(err)) == 0);
    spam_rules_destroy(&rules);
}

int
main(void)
{
    test_defaults();
    test_shipped_file();
    test_good_file();
    test_errors();
    test_regex_errors();
    test_bounds();
    UNIT_DONE();
}
