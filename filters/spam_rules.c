/*
 * filters/spam_rules.c - the rules file of the spam scorer: parse it,
 * compile its patterns once, and answer "what weighs symbol X".
 *
 * Owns the struct spam_rules and its compiled regex_t patterns. Does not
 * look at messages (spam_checks does). Runs at start-up and on reload, on
 * whatever thread loads the configuration; the result is read-only and
 * shared by the workers (regexec on a shared pattern is thread-safe).
 * Limits: SPAM_RULES_FILE_BYTES_MAX, SPAM_RULES_LINE_BYTES_MAX,
 * SPAM_RULES_MAX, SPAM_REGEX_BYTES_MAX, SPAM_DNS_ZONES_MAX,
 * SPAM_WEIGHT_ABS_MAX (filters/spam_limits.h).
 */
#include "filters/spam_rules.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"

/* The built-in symbols and their default weights. Names are Rspamd's where
 * Rspamd has the same check; the weights are Rspamd's defaults except
 * where the comment says otherwise. etc/spam.rules repeats this table. */
static const struct {
    const char *name;
    double      weight;
} spam_builtins[] = {
    { "GTUBE", 0.0 }, /* the action is reject whatever the weight */
    { "MISSING_DATE", 1.0 },
    { "MISSING_MID", 2.5 },
    { "MISSING_FROM", 2.0 },
    { "MIME_HTML_ONLY", 0.2 },
    { "REPLYTO_DOM_NEQ_FROM_DOM", 1.0 }, /* Rspamd: 0.0 (informational) */
    { "BROKEN_CONTENT_TYPE", 1.5 },
    { "MIME_BAD_EXTENSION", 2.0 },
    { "MIME_DOUBLE_BAD_EXTENSION", 3.0 },
    { "MANY_RECIPIENTS", 2.0 }, /* no weighted Rspamd equivalent */
    { "R_SPF_ALLOW", -0.2 },
    { "R_SPF_FAIL", 1.0 },
    { "R_SPF_SOFTFAIL", 0.0 },
    { "R_SPF_NEUTRAL", 0.0 },
    { "R_SPF_NA", 0.0 },
    { "R_SPF_DNSFAIL", 0.0 },
    { "R_SPF_PERMFAIL", 0.0 },
    { "R_DKIM_ALLOW", -0.2 },
    { "R_DKIM_REJECT", 1.0 },
    { "R_DKIM_TEMPFAIL", 0.0 },
    { "R_DKIM_PERMFAIL", 0.0 },
    { "R_DKIM_NA", 0.0 },
    { "DMARC_POLICY_ALLOW", -0.5 },
    { "DMARC_POLICY_REJECT", 2.0 },
    { "DMARC_POLICY_QUARANTINE", 1.5 },
    { "DMARC_POLICY_SOFTFAIL", 0.1 },
    { "DMARC_NA", 0.0 },
    { "DMARC_BAD_POLICY", 0.5 },
    { "DMARC_DNSFAIL", 0.0 },
    { "CLAM_VIRUS", 10.0 }, /* only seen when clamav_action is header-only */
    { "BAYES_SPAM", 5.1 },
    { "BAYES_HAM", -3.0 },
};
#define SPAM_BUILTIN_COUNT (sizeof(spam_builtins) / sizeof(spam_builtins[0]))

static_assert(SPAM_RULES_MAX >= 1, "room for rules");

struct rules_parse {
    struct spam_rules *rules;
    size_t             capacity;
    unsigned           line;
    char              *err;
    size_t             err_bytes;
};

static int parse_line(struct rules_parse *p, char *line);
static int parse_error(struct rules_parse *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static char *next_field(char **cursor);
static bool symbol_name_ok(const char *name);
static int parse_weight(struct rules_parse *p, const char *text, double *weight_out);
static bool zone_ok(const char *zone);
static int parse_code(const char *text, uint32_t *code_out);
static size_t zone_count(const struct spam_rules *rules, enum spam_rule_kind kind,
                         const char *zone);
static const char *pattern_unsafe(const char *pattern, size_t len);

int
spam_rules_parse(const char *text, size_t len, struct spam_rules **rules_out, char *err,
                 size_t err_bytes)
{
    ASSERT(rules_out != NULL);
    ASSERT(text != NULL || len == 0);
    *rules_out = NULL;
    if (err != NULL && err_bytes > 0) {
        err[0] = '\0';
    }
    struct rules_parse p = { .err = err, .err_bytes = err_bytes };
    if (len > SPAM_RULES_FILE_BYTES_MAX) {
        return parse_error(&p, -EFBIG, "rules file over %u bytes", SPAM_RULES_FILE_BYTES_MAX);
    }
    p.capacity = SPAM_BUILTIN_COUNT + SPAM_RULES_MAX;
    p.rules = calloc(1, sizeof(*p.rules) + p.capacity * sizeof(p.rules->rules[0]));
    if (p.rules == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < SPAM_BUILTIN_COUNT; i++) {
        struct spam_rule *r = &p.rules->rules[i];
        ASSERT(strlen(spam_builtins[i].name) < sizeof(r->name));
        (void)snprintf(r->name, sizeof(r->name), "%s", spam_builtins[i].name);
        r->weight = spam_builtins[i].weight;
        r->kind = SPAM_RULE_BUILTIN;
    }
    p.rules->rule_count = SPAM_BUILTIN_COUNT;

    char linebuf[SPAM_RULES_LINE_BYTES_MAX + 1];
    size_t pos = 0;
    while (pos < len) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t line_len = end - pos;
        if (line_len > 0 && text[end - 1] == '\r') {
            line_len--;
        }
        if (line_len > SPAM_RULES_LINE_BYTES_MAX) {
            spam_rules_destroy(&p.rules);
            return parse_error(&p, -EINVAL, "line over %u bytes", SPAM_RULES_LINE_BYTES_MAX);
        }
        if (memchr(text + pos, '\0', line_len) != NULL) {
            spam_rules_destroy(&p.rules);
            return parse_error(&p, -EINVAL, "NUL byte");
        }
        memcpy(linebuf, text + pos, line_len);
        linebuf[line_len] = '\0';
        int rc = parse_line(&p, linebuf);
        if (rc != 0) {
            spam_rules_destroy(&p.rules);
            return rc;
        }
        pos = nl != NULL ? end + 1 : len;
    }
    *rules_out = p.rules;
    return 0;
}

int
spam_rules_load(const char *path, struct spam_rules **rules_out, char *err, size_t err_bytes)
{
    ASSERT(path != NULL);
    *rules_out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (err != NULL && err_bytes > 0) {
            (void)snprintf(err, err_bytes, "%s: %s", path, strerror(e));
        }
        return -e;
    }
    size_t cap = SPAM_RULES_FILE_BYTES_MAX + 1;
    char *buf = malloc(cap);
    if (buf == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd); /* read-only: nothing to lose on close */
    if (rc != 0) {
        if (err != NULL && err_bytes > 0) {
            (void)snprintf(err, err_bytes, "%s: %s", path, strerror(-rc));
        }
        free(buf);
        return rc;
    }
    rc = spam_rules_parse(buf, len, rules_out, err, err_bytes);
    free(buf);
    return rc;
}

void
spam_rules_destroy(struct spam_rules **rules)
{
    if (rules == NULL || *rules == NULL) {
        return;
    }
    struct spam_rules *r = *rules;
    for (size_t i = 0; i < r->rule_count; i++) {
        if (r->rules[i].has_regex) {
            regfree(&r->rules[i].regex);
        }
    }
    free(r);
    *rules = NULL;
}

const struct spam_rule *
spam_rules_find(const struct spam_rules *rules, const char *name)
{
    ASSERT(rules != NULL);
    for (size_t i = 0; i < rules->rule_count; i++) {
        if (strcmp(rules->rules[i].name, name) == 0) {
            return &rules->rules[i];
        }
    }
    return NULL;
}

double
spam_rules_weight(const struct spam_rules *rules, const char *name)
{
    const struct spam_rule *r = spam_rules_find(rules, name);
    return r != NULL ? r->weight : 0.0;
}

/* One line, NUL-terminated, CR and LF removed. */
static int
parse_line(struct rules_parse *p, char *line)
{
    char *cursor = line;
    while (ascii_is_blank(*cursor)) {
        cursor++;
    }
    if (*cursor == '\0' || *cursor == '#') {
        return 0;
    }
    char *directive = next_field(&cursor);
    char *name = next_field(&cursor);
    char *weight_text = next_field(&cursor);
    if (name == NULL || weight_text == NULL) {
        return parse_error(p, -EINVAL, "'%s' needs a symbol and a weight", directive);
    }
    if (!symbol_name_ok(name)) {
        return parse_error(p, -EINVAL, "bad symbol name '%.64s' (1..63 of A-Z 0-9 _)", name);
    }
    double weight = 0.0;
    int rc = parse_weight(p, weight_text, &weight);
    if (rc != 0) {
        return rc;
    }
    struct spam_rule *existing = NULL;
    for (size_t i = 0; i < p->rules->rule_count; i++) {
        if (strcmp(p->rules->rules[i].name, name) == 0) {
            existing = &p->rules->rules[i];
        }
    }

    if (strcmp(directive, "score") == 0) {
        if (next_field(&cursor) != NULL) {
            return parse_error(p, -EINVAL, "'score' takes a symbol and a weight only");
        }
        if (existing == NULL) {
            return parse_error(p, -EINVAL, "unknown symbol '%s'", name);
        }
        existing->weight = weight;
        return 0;
    }

    enum spam_rule_kind kind;
    if (strcmp(directive, "header") == 0) {
        kind = SPAM_RULE_HEADER;
    } else if (strcmp(directive, "body") == 0) {
        kind = SPAM_RULE_BODY;
    } else if (strcmp(directive, "dnsbl") == 0) {
        kind = SPAM_RULE_DNSBL;
    } else if (strcmp(directive, "uribl") == 0) {
        kind = SPAM_RULE_URIBL;
    } else {
        return parse_error(p, -EINVAL, "unknown directive '%.32s'", directive);
    }
    if (existing != NULL) {
        if (existing->line == 0) {
            return parse_error(p, -EINVAL, "'%s' is a built-in symbol (use 'score')", name);
        }
        return parse_error(p, -EINVAL, "symbol '%s' already defined on line %u", name,
                           existing->line);
    }
    if (p->rules->user_rule_count >= SPAM_RULES_MAX) {
        return parse_error(p, -E2BIG, "more than %u rules", SPAM_RULES_MAX);
    }
    ASSERT(p->rules->rule_count < p->capacity);
    struct spam_rule *r = &p->rules->rules[p->rules->rule_count];
    memset(r, 0, sizeof(*r));
    (void)snprintf(r->name, sizeof(r->name), "%s", name);
    r->weight = weight;
    r->kind = kind;
    r->line = p->line;

    if (kind == SPAM_RULE_DNSBL || kind == SPAM_RULE_URIBL) {
        char *zone = next_field(&cursor);
        char *code = next_field(&cursor);
        if (zone == NULL) {
            return parse_error(p, -EINVAL, "'%s' needs a zone", directive);
        }
        if (next_field(&cursor) != NULL) {
            return parse_error(p, -EINVAL, "'%s' takes a zone and at most one return code",
                               directive);
        }
        for (char *c = zone; *c != '\0'; c++) {
            *c = (char)ascii_lower((unsigned char)*c);
        }
        size_t zlen = strlen(zone);
        if (zlen > 0 && zone[zlen - 1] == '.') {
            zone[zlen - 1] = '\0';
        }
        if (!zone_ok(zone)) {
            return parse_error(p, -EINVAL, "bad zone '%.64s'", zone);
        }
        if (code != NULL) {
            if (parse_code(code, &r->code) != 0) {
                return parse_error(p, -EINVAL, "bad return code '%.32s' (want 127.0.0.N)", code);
            }
            r->has_code = true;
        }
        if (zone_count(p->rules, kind, zone) >= SPAM_DNS_ZONES_MAX) {
            return parse_error(p, -E2BIG, "more than %u %s zones", SPAM_DNS_ZONES_MAX,
                               directive);
        }
        (void)snprintf(r->zone, sizeof(r->zone), "%s", zone);
    } else {
        if (kind == SPAM_RULE_HEADER) {
            char *field = next_field(&cursor);
            if (field == NULL) {
                return parse_error(p, -EINVAL, "'header' needs a field name and a regex");
            }
            if (strlen(field) >= sizeof(r->field)) {
                return parse_error(p, -EINVAL, "field name over %u bytes",
                                   SPAM_FIELD_NAME_BYTES - 1);
            }
            for (const char *c = field; *c != '\0'; c++) {
                unsigned char u = (unsigned char)*c;
                if (u <= 32 || u >= 127 || u == ':') {
                    return parse_error(p, -EINVAL, "bad field name '%.64s'", field);
                }
            }
            (void)snprintf(r->field, sizeof(r->field), "%s", field);
        }
        /* The pattern is the rest of the line. */
        char *pattern = cursor;
        while (ascii_is_blank(*pattern)) {
            pattern++;
        }
        size_t plen = strlen(pattern);
        while (plen > 0 && ascii_is_blank(pattern[plen - 1])) {
            pattern[--plen] = '\0';
        }
        if (plen == 0) {
            return parse_error(p, -EINVAL, "'%s' needs a regex", directive);
        }
        if (plen > SPAM_REGEX_BYTES_MAX) {
            return parse_error(p, -EINVAL, "regex over %u bytes", SPAM_REGEX_BYTES_MAX);
        }
        const char *unsafe = pattern_unsafe(pattern, plen);
        if (unsafe != NULL) {
            return parse_error(p, -EINVAL, "%s", unsafe);
        }
        int rrc = regcomp(&r->regex, pattern, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        if (rrc != 0) {
            char why[128];
            (void)regerror(rrc, &r->regex, why, sizeof(why));
            return parse_error(p, -EINVAL, "bad regex: %s", why);
        }
        r->has_regex = true;
    }
    p->rules->rule_count++;
    p->rules->user_rule_count++;
    return 0;
}

static int
parse_error(struct rules_parse *p, int rc, const char *fmt, ...)
{
    if (p->err != NULL && p->err_bytes > 0) {
        int n = 0;
        if (p->line > 0) {
            n = snprintf(p->err, p->err_bytes, "line %u: ", p->line);
        }
        if (n >= 0 && (size_t)n < p->err_bytes) {
            va_list ap;
            va_start(ap, fmt);
            (void)vsnprintf(p->err + n, p->err_bytes - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

/* The next blank-separated field (NUL-terminated in place), or NULL. A '#'
 * at the start of a field starts a comment. */
static char *
next_field(char **cursor)
{
    char *c = *cursor;
    while (ascii_is_blank(*c)) {
        c++;
    }
    if (*c == '\0' || *c == '#') {
        *cursor = c;
        return NULL;
    }
    char *start = c;
    while (*c != '\0' && !ascii_is_blank(*c)) {
        c++;
    }
    if (*c != '\0') {
        *c++ = '\0';
    }
    *cursor = c;
    return start;
}

static bool
symbol_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= SPAM_SYMBOL_NAME_BYTES) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static int
parse_weight(struct rules_parse *p, const char *text, double *weight_out)
{
    char *end = NULL;
    errno = 0;
    double w = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(w)) {
        return parse_error(p, -EINVAL, "bad weight '%.32s'", text);
    }
    if (fabs(w) > SPAM_WEIGHT_ABS_MAX) {
        return parse_error(p, -EINVAL, "weight %.32s beyond +-%.0f", text, SPAM_WEIGHT_ABS_MAX);
    }
    *weight_out = w;
    return 0;
}

/* A DNS name of letters, digits, '-', '_' in labels of 1..63, at most 253. */
static bool
zone_ok(const char *zone)
{
    size_t n = strlen(zone);
    if (n == 0 || n > 253) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = zone[i];
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return false;
        }
        if (++label > 63) {
            return false;
        }
    }
    return label > 0;
}

/* "127.a.b.c" in host order. */
static int
parse_code(const char *text, uint32_t *code_out)
{
    unsigned v[4];
    char tail;
    if (sscanf(text, "%3u.%3u.%3u.%3u%c", &v[0], &v[1], &v[2], &v[3], &tail) != 4) {
        return -EINVAL;
    }
    if (v[0] != 127 || v[1] > 255 || v[2] > 255 || v[3] > 255) {
        return -EINVAL;
    }
    *code_out = (v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3];
    return 0;
}

/* Distinct zones of kind, counting zone itself as new unless present. */
static size_t
zone_count(const struct spam_rules *rules, enum spam_rule_kind kind, const char *zone)
{
    size_t count = 0;
    for (size_t i = 0; i < rules->rule_count; i++) {
        const struct spam_rule *r = &rules->rules[i];
        if (r->kind != kind) {
            continue;
        }
        if (strcmp(r->zone, zone) == 0) {
            return 0; /* not a new zone */
        }
        bool is_first = true;
        for (size_t j = 0; j < i; j++) {
            if (rules->rules[j].kind == kind && strcmp(rules->rules[j].zone, r->zone) == 0) {
                is_first = false;
                break;
            }
        }
        if (is_first) {
            count++;
        }
    }
    return count;
}

/*
 * Patterns whose compiling or matching cost is not bounded by the bytes
 * they read are refused before regcomp sees them: back-references
 * (matching is exponential), a quantifier on a quantifier ("a++++",
 * which makes glibc's regcomp allocate without end), and bounded
 * repetitions whose counts multiply past SPAM_REGEX_REPEAT_PRODUCT_MAX
 * (glibc copies the repeated expression once per count, nested ones
 * multiply). Returns NULL for a safe pattern, else why not.
 */
static const char *
pattern_unsafe(const char *pattern, size_t len)
{
    bool after_quantifier = false;
    unsigned long product = 1;
    for (size_t i = 0; i < len; i++) {
        char c = pattern[i];
        if (c == '\\') {
            if (i + 1 < len && pattern[i + 1] >= '1' && pattern[i + 1] <= '9') {
                return "back-references are not allowed";
            }
            i++; /* an escaped byte is never the start of anything */
            after_quantifier = false;
            continue;
        }
        if (c == '[') {
            /* A bracket expression: ']' first (after an optional '^') is a
             * member; [:class:] and friends hold no ']' of their own. */
            size_t k = i + 1;
            if (k < len && pattern[k] == '^') {
                k++;
            }
            if (k < len && pattern[k] == ']') {
                k++;
            }
            while (k < len && pattern[k] != ']') {
                if (pattern[k] == '[' && k + 1 < len &&
                    (pattern[k + 1] == ':' || pattern[k + 1] == '.' || pattern[k + 1] == '=')) {
                    char close = pattern[k + 1];
                    k += 2;
                    while (k + 1 < len && !(pattern[k] == close && pattern[k + 1] == ']')) {
                        k++;
                    }
                    k += 2;
                    continue;
                }
                k++;
            }
            i = k; /* at the closing ']' (or past the end: regcomp refuses it) */
            after_quantifier = false;
            continue;
        }
        if (c == '*' || c == '+' || c == '?') {
            if (after_quantifier) {
                return "a quantifier may not follow a quantifier";
            }
            after_quantifier = true;
            continue;
        }
        if (c == '{') {
            size_t k = i + 1;
            unsigned long low = 0;
            unsigned long high = 0;
            bool has_digits = false;
            while (k < len && pattern[k] >= '0' && pattern[k] <= '9' && low <= 100000) {
                low = low * 10 + (unsigned long)(pattern[k++] - '0');
                has_digits = true;
            }
            high = low;
            if (k < len && pattern[k] == ',') {
                k++;
                high = 0;
                bool has_high = false;
                while (k < len && pattern[k] >= '0' && pattern[k] <= '9' && high <= 100000) {
                    high = high * 10 + (unsigned long)(pattern[k++] - '0');
                    has_high = true;
                }
                has_digits = has_digits || has_high; /* glibc reads "{,m}" as {0,m} */
                if (!has_high) {
                    high = low > 0 ? low : 1; /* {n,}: n copies and a star */
                }
            }
            if (!has_digits || k >= len || pattern[k] != '}') {
                after_quantifier = false; /* not a bound; regcomp decides */
                continue;
            }
            if (after_quantifier) {
                return "a quantifier may not follow a quantifier";
            }
            unsigned long count = high > low ? high : low;
            if (count == 0) {
                count = 1;
            }
            product *= count;
            if (product > SPAM_REGEX_REPEAT_PRODUCT_MAX) {
                return "repetition counts multiply past " SPAM_STRINGIFY(SPAM_REGEX_REPEAT_PRODUCT_MAX);
            }
            i = k;
            after_quantifier = true;
            continue;
        }
        after_quantifier = false;
    }
    return NULL;
}
