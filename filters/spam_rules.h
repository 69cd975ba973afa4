/*
 * filters/spam_rules.h - the spam scorer's symbols and their weights: the
 * built-in symbols (compiled-in default weights) and what the operator's
 * rules file adds or changes. One struct spam_rules is made at start-up
 * (and again on reload), then only read, so every worker shares it.
 *
 * The rules file is line based; '#' starts a comment, blank lines are
 * ignored, fields are separated by blanks:
 *
 *   score   SYMBOL WEIGHT                     weight of a built-in symbol
 *   header  SYMBOL WEIGHT Field-Name REGEX    regex over each decoded Field-Name
 *   body    SYMBOL WEIGHT REGEX               regex over the decoded text parts
 *   dnsbl   SYMBOL WEIGHT ZONE [127.0.0.N]    the client IP listed in ZONE
 *   uribl   SYMBOL WEIGHT ZONE [127.0.0.N]    a link's domain listed in ZONE
 *
 * REGEX is the rest of the line (trailing blanks dropped), a POSIX extended
 * regular expression matched case-insensitively. Patterns whose cost is
 * not bounded by the bytes they read are refused: back-references, a
 * quantifier right after a quantifier ("a++"), and {n,m} counts whose
 * product passes SPAM_REGEX_REPEAT_PRODUCT_MAX. SYMBOL is 1..63 of A-Z 0-9 _.
 * A dnsbl/uribl rule with 127.0.0.N fires only on that answer; one without
 * fires on any answer in 127.0.0.0/8 that no rule of its zone with a code
 * matched (127.255.255.0/24 are the lists' own error codes and never count).
 * Limits: spam_limits.h (SPAM_RULES_*). Any error names its line.
 */
#ifndef TOASTER_FILTERS_SPAM_RULES_H
#define TOASTER_FILTERS_SPAM_RULES_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/spam_limits.h"

enum spam_rule_kind {
    SPAM_RULE_BUILTIN, /* computed by spam_checks; only its weight is configurable */
    SPAM_RULE_HEADER,
    SPAM_RULE_BODY,
    SPAM_RULE_DNSBL,
    SPAM_RULE_URIBL,
};

struct spam_rule {
    char                name[SPAM_SYMBOL_NAME_BYTES];
    double              weight;
    enum spam_rule_kind kind;
    unsigned            line;                        /* 0 for a built-in default */
    char                field[SPAM_FIELD_NAME_BYTES]; /* header rules */
    char                zone[SPAM_ZONE_BYTES];        /* dnsbl, uribl (lower case) */
    bool                has_code;                     /* dnsbl, uribl: a return code given */
    uint32_t            code;                         /* 127.0.0.N in host order */
    bool                has_regex;
    regex_t             regex;                        /* header, body */
};

struct spam_rules {
    size_t           rule_count;
    size_t           user_rule_count; /* rules the file added (not score lines) */
    struct spam_rule rules[];         /* built-ins first, in spam_rules.c order */
};

/* Parse a rules file held in text[0..len). Returns 0 and sets *rules_out
 * (free with spam_rules_destroy), -EINVAL (syntax, unknown symbol, bad
 * regex, duplicate name; err gets "line N: why"), -E2BIG (more than
 * SPAM_RULES_MAX rules or SPAM_DNS_ZONES_MAX zones; err names the line),
 * -EFBIG (text over SPAM_RULES_FILE_BYTES_MAX) or -ENOMEM. len 0 gives
 * the built-in defaults. err may be NULL. */
int spam_rules_parse(const char *text, size_t len, struct spam_rules **rules_out, char *err,
                     size_t err_bytes);

/* The same from a file; -errno of open/read as well (err says which). */
int spam_rules_load(const char *path, struct spam_rules **rules_out, char *err,
                    size_t err_bytes);

/* Free the rules and their compiled patterns; NULLs *rules. */
void spam_rules_destroy(struct spam_rules **rules);

/* The rule named name, or NULL. */
const struct spam_rule *spam_rules_find(const struct spam_rules *rules, const char *name);

/* Weight of the symbol name, or 0.0 when there is no such symbol. */
double spam_rules_weight(const struct spam_rules *rules, const char *name);

#endif
