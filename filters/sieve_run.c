/*
 * filters/sieve_run.c - the Sieve interpreter (see sieve_run.h): walks
 * the validated tree, evaluates tests through one matcher (:is,
 * :contains, :matches with match variables, relational :value/:count,
 * extlists :list, under i;octet, i;ascii-casemap and i;ascii-numeric as
 * RFC 4790 orders them), runs the core commands, include/return/global
 * (RFC 6609) and collects the actions into the shared result, checking
 * RFC 5429's conflicts. Variables and flags live in sieve_run_vars.c,
 * the header view in sieve_run_header.c, the tests that need the world
 * outside in sieve_run_ext.c.
 * Bounds: steps (commands + tests visited, includes included), distinct
 * actions, distinct redirects, match work (byte comparisons over the
 * whole run), header block bytes, include depth and count, variables.
 * Recursion is bounded by the validator's block and test depth limits
 * (32 each by default) times SIEVE_RUN_INCLUDE_DEPTH_MAX + 1 scripts.
 */
#include "filters/sieve_run.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "core/utf8.h"
#include "filters/sieve_run_internal.h"

int
run_fail(struct run *run, int rc, uint32_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    run->error->line = line;
    (void)vsnprintf(run->error->text, sizeof(run->error->text), fmt, ap);
    va_end(ap);
    return rc;
}

unsigned char
run_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool
chars_equal(unsigned char a, unsigned char b, enum sieve_comparator comparator)
{
    if (comparator == SIEVE_CMP_ASCII_CASEMAP) {
        return run_lower(a) == run_lower(b);
    }
    return a == b;
}

/* Bytes of the UTF-8 character starting at s[0] (1 for a stray byte),
 * at most left. */
size_t
run_utf8_char_len(const char *s, size_t left)
{
    unsigned char c = (unsigned char)s[0];
    size_t n = 1;
    if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
    } else if (c >= 0xe0) {
        n = (c <= 0xef) ? 3 : 1;
    } else if (c >= 0xc2) {
        n = 2;
    }
    if (n > left) {
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            return 1;
        }
    }
    return n;
}

bool
run_ascii_iequal(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (run_lower((unsigned char)a[i]) != run_lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

/* ---- match types ---- */

/* The glob match of sieve_glob_match(); when caps is not NULL it also
 * records, for the first cap_max wildcards, where each matched in value
 * (caps[2i] start, caps[2i+1] length) and sets *cap_count. Each '*'
 * takes the shortest text that lets the rest match, left to right (RFC
 * 5229 3.2's choice for match variables). */
static int
glob_match(const char *value, size_t value_len, const char *pattern, size_t pattern_len,
           enum sieve_comparator comparator, uint64_t *work, uint64_t work_max, size_t *caps,
           size_t cap_max, size_t *cap_count)
{
    size_t p = 0;
    size_t v = 0;
    size_t wi = 0;            /* index of the next wildcard */
    size_t star_p = SIZE_MAX; /* pattern index after the last '*' */
    size_t star_v = 0;        /* where that '*' match currently ends */
    size_t star_wi = 0;
    while (v < value_len) {
        if (++*work > work_max) {
            return -E2BIG;
        }
        if (p < pattern_len && pattern[p] == '*') {
            if (caps != NULL && wi < cap_max) {
                caps[2 * wi] = v;
                caps[2 * wi + 1] = 0;
            }
            star_wi = wi++;
            p++;
            star_p = p;
            star_v = v;
            continue;
        }
        if (p < pattern_len && pattern[p] == '?') {
            size_t n = run_utf8_char_len(value + v, value_len - v);
            if (caps != NULL && wi < cap_max) {
                caps[2 * wi] = v;
                caps[2 * wi + 1] = n;
            }
            wi++;
            p++;
            v += n;
            continue;
        }
        if (p < pattern_len) {
            size_t step = 1;
            unsigned char c = (unsigned char)pattern[p];
            if (c == '\\' && p + 1 < pattern_len) {
                c = (unsigned char)pattern[p + 1];
                step = 2;
            }
            if (chars_equal(c, (unsigned char)value[v], comparator)) {
                p += step;
                v++;
                continue;
            }
        }
        if (star_p == SIZE_MAX) {
            return 0;
        }
        /* Backtrack: the last '*' takes one more character. */
        star_v += run_utf8_char_len(value + star_v, value_len - star_v);
        v = star_v;
        p = star_p;
        wi = star_wi + 1;
        if (caps != NULL && star_wi < cap_max) {
            caps[2 * star_wi + 1] = star_v - caps[2 * star_wi];
        }
    }
    while (p < pattern_len && pattern[p] == '*') {
        if (caps != NULL && wi < cap_max) {
            caps[2 * wi] = v;
            caps[2 * wi + 1] = 0;
        }
        wi++;
        p++;
    }
    if (p != pattern_len) {
        return 0;
    }
    if (cap_count != NULL) {
        *cap_count = wi < cap_max ? wi : cap_max;
    }
    return 1;
}

int
sieve_glob_match(const char *value, size_t value_len, const char *pattern, size_t pattern_len,
                 enum sieve_comparator comparator, uint64_t *work, uint64_t work_max)
{
    return glob_match(value, value_len, pattern, pattern_len, comparator, work, work_max, NULL, 0,
                      NULL);
}

static int
contains_match(struct run *run, const char *value, size_t value_len, const char *key,
               size_t key_len, enum sieve_comparator comparator)
{
    if (key_len == 0) {
        return 1;
    }
    for (size_t i = 0; i + key_len <= value_len; i++) {
        size_t j = 0;
        while (j < key_len) {
            if (++run->work > run->work_max) {
                return -E2BIG;
            }
            if (!chars_equal((unsigned char)value[i + j], (unsigned char)key[j], comparator)) {
                break;
            }
            j++;
        }
        if (j == key_len) {
            return 1;
        }
    }
    return 0;
}

/* i;ascii-numeric (RFC 4790 9.1): the leading digits as a number; a
 * string not starting with a digit is positive infinity. Returns the
 * order of a against b (< 0, 0, > 0). */
static int
numeric_order(const char *a, size_t a_len, const char *b, size_t b_len)
{
    bool a_inf = a_len == 0 || a[0] < '0' || a[0] > '9';
    bool b_inf = b_len == 0 || b[0] < '0' || b[0] > '9';
    if (a_inf || b_inf) {
        return a_inf == b_inf ? 0 : a_inf ? 1 : -1;
    }
    size_t ai = 0;
    size_t bi = 0;
    while (ai + 1 < a_len && a[ai] == '0' && a[ai + 1] >= '0' && a[ai + 1] <= '9') {
        ai++;
    }
    while (bi + 1 < b_len && b[bi] == '0' && b[bi + 1] >= '0' && b[bi + 1] <= '9') {
        bi++;
    }
    size_t ae = ai;
    size_t be = bi;
    while (ae < a_len && a[ae] >= '0' && a[ae] <= '9') {
        ae++;
    }
    while (be < b_len && b[be] >= '0' && b[be] <= '9') {
        be++;
    }
    if (ae - ai != be - bi) {
        return ae - ai < be - bi ? -1 : 1;
    }
    return memcmp(a + ai, b + bi, ae - ai);
}

/* The order of a against b under comparator (RFC 4790: i;octet and
 * i;ascii-casemap compare bytes, a prefix sorting first). */
static int
order(struct run *run, const char *a, size_t a_len, const char *b, size_t b_len,
      enum sieve_comparator comparator)
{
    if (comparator == SIEVE_CMP_ASCII_NUMERIC) {
        run->work += a_len < b_len ? a_len : b_len;
        return numeric_order(a, a_len, b, b_len);
    }
    size_t n = a_len < b_len ? a_len : b_len;
    run->work += n;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i];
        unsigned char y = (unsigned char)b[i];
        if (comparator == SIEVE_CMP_ASCII_CASEMAP) {
            x = run_lower(x);
            y = run_lower(y);
        }
        if (x != y) {
            return x < y ? -1 : 1;
        }
    }
    return a_len == b_len ? 0 : a_len < b_len ? -1 : 1;
}

static bool
relation_holds(enum sieve_relation relation, int cmp)
{
    switch (relation) {
    case SIEVE_REL_GT:
        return cmp > 0;
    case SIEVE_REL_GE:
        return cmp >= 0;
    case SIEVE_REL_LT:
        return cmp < 0;
    case SIEVE_REL_LE:
        return cmp <= 0;
    case SIEVE_REL_EQ:
        return cmp == 0;
    case SIEVE_REL_NE:
        return cmp != 0;
    case SIEVE_REL_NONE:
        break;
    }
    return false;
}

int
run_matcher_init(struct run *run, const struct sieve_node *node, const struct sieve_arg *keys,
                 struct matcher *m)
{
    m->node = node;
    m->count = 0;
    m->is_capturing = node->match == SIEVE_MATCH_MATCHES &&
                      sieve_script_requires(run->script, SIEVE_EXT_VARIABLES);
    return run_expand_list(run, keys, &m->keys, &m->key_count);
}

static int
list_match(struct run *run, const struct sieve_node *node, const struct rstr *list,
           const char *value, size_t len)
{
    if (run->env->list_contains == NULL) {
        return run_fail(run, -EINVAL, node->line, "%s :list: no lists are configured",
                        node->name);
    }
    /* The callback takes NUL-terminated names; list is in an arena already. */
    char name[256];
    if (list->len >= sizeof(name)) {
        return run_fail(run, -EINVAL, node->line, "%s :list: list name too long", node->name);
    }
    memcpy(name, list->text, list->len);
    name[list->len] = '\0';
    int rc = run->env->list_contains(run->env->ctx, name, value, len);
    if (rc == -ENOENT) {
        return run_fail(run, -EINVAL, node->line, "%s :list: unknown list \"%s\"", node->name,
                        name);
    }
    if (rc < 0) {
        return run_fail(run, -EINVAL, node->line, "%s :list: list \"%s\" failed (%d)",
                        node->name, name, rc);
    }
    return rc > 0 ? 1 : 0;
}

int
run_matcher_value(struct run *run, struct matcher *m, const char *value, size_t len)
{
    const struct sieve_node *node = m->node;
    if (node->match == SIEVE_MATCH_COUNT) {
        m->count++;
        return 0;
    }
    for (size_t k = 0; k < m->key_count; k++) {
        const struct rstr *key = &m->keys[k];
        int rc = 0;
        size_t caps[2 * (SIEVE_RUN_MATCH_VALUES - 1)];
        size_t cap_count = 0;
        switch (node->match) {
        case SIEVE_MATCH_IS:
            if (node->comparator == SIEVE_CMP_ASCII_NUMERIC) {
                rc = numeric_order(value, len, key->text, key->len) == 0;
            } else if (len == key->len) {
                rc = 1;
                for (size_t i = 0; i < len; i++) {
                    if (!chars_equal((unsigned char)value[i], (unsigned char)key->text[i],
                                     node->comparator)) {
                        rc = 0;
                        break;
                    }
                }
            }
            run->work += len;
            break;
        case SIEVE_MATCH_CONTAINS:
        case SIEVE_MATCH_MATCHES:
            if (node->comparator == SIEVE_CMP_ASCII_NUMERIC) {
                /* The validator refuses this; a tree from elsewhere must not crash. */
                return run_fail(run, -EINVAL, node->line,
                                "i;ascii-numeric cannot be used with :contains or :matches");
            }
            if (node->match == SIEVE_MATCH_CONTAINS) {
                rc = contains_match(run, value, len, key->text, key->len, node->comparator);
            } else {
                rc = glob_match(value, len, key->text, key->len, node->comparator, &run->work,
                                run->work_max, m->is_capturing ? caps : NULL,
                                SIEVE_RUN_MATCH_VALUES - 1, &cap_count);
            }
            break;
        case SIEVE_MATCH_VALUE:
            rc = relation_holds(node->relation,
                                order(run, value, len, key->text, key->len, node->comparator));
            break;
        case SIEVE_MATCH_LIST:
            rc = list_match(run, node, key, value, len);
            if (rc < 0) {
                return rc;
            }
            break;
        case SIEVE_MATCH_COUNT:
            break;
        }
        if (rc == -E2BIG || run->work > run->work_max) {
            return run_fail(run, -E2BIG, node->line, "match work limit (%llu) exceeded",
                            (unsigned long long)run->work_max);
        }
        if (rc == 1) {
            if (m->is_capturing) {
                rc = run_set_match_values(run, value, len, caps, cap_count);
                if (rc < 0) {
                    return run_fail(run, rc, node->line, "out of memory");
                }
            }
            return 1;
        }
    }
    return 0;
}

int
run_matcher_end(struct run *run, struct matcher *m)
{
    if (m->node->match != SIEVE_MATCH_COUNT) {
        return 0;
    }
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)m->count);
    ASSERT(n > 0);
    ASSERT((size_t)n < sizeof(digits));
    for (size_t k = 0; k < m->key_count; k++) {
        if (relation_holds(m->node->relation, order(run, digits, (size_t)n, m->keys[k].text,
                                                    m->keys[k].len, m->node->comparator))) {
            return 1;
        }
    }
    return 0;
}

/* ---- tests ---- */

static int run_test(struct run *run, const struct sieve_node *test);
static int run_leaf_test(struct run *run, const struct sieve_node *test);

static void
tmp_reset(struct run *run)
{
    sieve_arena_free(&run->tmp);
    sieve_arena_init(&run->tmp, SIEVE_RUN_TMP_BYTES_MAX);
}

static int
step(struct run *run, const struct sieve_node *node)
{
    if (++run->steps > run->steps_max) {
        return run_fail(run, -E2BIG, node->line, "step limit (%llu) exceeded",
                        (unsigned long long)run->steps_max);
    }
    return 0;
}

/* Calls fn for the fields named name: the one :index picks, or all. */
static size_t
fields_first(struct run *run, const struct sieve_node *test, const struct rstr *name,
             bool *is_indexed_out)
{
    *is_indexed_out = sieve_node_tag(test, SIEVE_TAG_INDEX) != NULL;
    if (*is_indexed_out) {
        return run_field_pick(run, test, name->text, name->len);
    }
    return run_field_next(run, 0, name->text, name->len);
}

static size_t
fields_next(struct run *run, size_t field, const struct rstr *name, bool is_indexed)
{
    if (is_indexed) {
        return SIZE_MAX;
    }
    return run_field_next(run, field + 1, name->text, name->len);
}

static int
test_header(struct run *run, const struct sieve_node *test)
{
    struct rstr *names = NULL;
    size_t name_count = 0;
    struct matcher m;
    int rc = run_expand_list(run, test->positional[0], &names, &name_count);
    if (rc == 0) {
        rc = run_matcher_init(run, test, test->positional[1], &m);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t n = 0; n < name_count; n++) {
        bool is_indexed = false;
        for (size_t f = fields_first(run, test, &names[n], &is_indexed); f != SIZE_MAX;
             f = fields_next(run, f, &names[n], is_indexed)) {
            size_t len = run_field_value(run, f);
            /* RFC 5228 2.7.2: header values are matched decoded. */
            size_t decoded = run_decode_2047(run, run->scratch, len);
            rc = run_matcher_value(run, &m, run->scratch_addr, decoded);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return run_matcher_end(run, &m);
}

static int
test_exists(struct run *run, const struct sieve_node *test)
{
    struct rstr *names = NULL;
    size_t name_count = 0;
    int rc = run_expand_list(run, test->positional[0], &names, &name_count);
    if (rc < 0) {
        return rc;
    }
    for (size_t n = 0; n < name_count; n++) {
        if (run_field_next(run, 0, names[n].text, names[n].len) == SIZE_MAX) {
            return 0;
        }
    }
    return 1;
}

static int
match_address(struct run *run, struct matcher *m, const char *addr, size_t len)
{
    const char *part = NULL;
    size_t part_len = 0;
    if (!run_address_part(m->node->address_part, addr, len, &part, &part_len)) {
        return 0;
    }
    return run_matcher_value(run, m, part, part_len);
}

static int
test_address(struct run *run, const struct sieve_node *test)
{
    struct rstr *names = NULL;
    size_t name_count = 0;
    struct matcher m;
    int rc = run_expand_list(run, test->positional[0], &names, &name_count);
    if (rc == 0) {
        rc = run_matcher_init(run, test, test->positional[1], &m);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t n = 0; n < name_count; n++) {
        bool is_indexed = false;
        for (size_t f = fields_first(run, test, &names[n], &is_indexed); f != SIZE_MAX;
             f = fields_next(run, f, &names[n], is_indexed)) {
            size_t value_len = run_field_value(run, f);
            size_t apos = 0;
            size_t addr_len = 0;
            while (run_address_next(run->scratch, value_len, &apos, run->scratch_addr,
                                    &addr_len)) {
                run->work += addr_len;
                rc = match_address(run, &m, run->scratch_addr, addr_len);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    return run_matcher_end(run, &m);
}

static int
test_envelope(struct run *run, const struct sieve_node *test)
{
    struct rstr *parts = NULL;
    size_t part_count = 0;
    struct matcher m;
    int rc = run_expand_list(run, test->positional[0], &parts, &part_count);
    if (rc == 0) {
        rc = run_matcher_init(run, test, test->positional[1], &m);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t n = 0; n < part_count; n++) {
        const struct rstr *s = &parts[n];
        const char *value = NULL;
        if (run_ascii_iequal(s->text, s->len, "from")) {
            value = run->message->envelope_from;
        } else if (run_ascii_iequal(s->text, s->len, "to")) {
            value = run->message->envelope_to;
        } else if (run_ascii_iequal(s->text, s->len, "auth")) {
            value = run->message->auth_user;
        }
        if (value == NULL) {
            continue;
        }
        size_t len = strlen(value);
        if (len == 0) {
            /* RFC 5228 5.4: the null reverse-path matches "" whatever the part. */
            rc = run_matcher_value(run, &m, "", 0);
        } else {
            rc = match_address(run, &m, value, len);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return run_matcher_end(run, &m);
}

static int
test_string(struct run *run, const struct sieve_node *test)
{
    struct rstr *sources = NULL;
    size_t source_count = 0;
    struct matcher m;
    int rc = run_expand_list(run, test->positional[0], &sources, &source_count);
    if (rc == 0) {
        rc = run_matcher_init(run, test, test->positional[1], &m);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t n = 0; n < source_count; n++) {
        if (test->match == SIEVE_MATCH_COUNT && sources[n].len == 0) {
            continue; /* RFC 5229 section 5: empty strings are not counted */
        }
        rc = run_matcher_value(run, &m, sources[n].text, sources[n].len);
        if (rc != 0) {
            return rc;
        }
    }
    return run_matcher_end(run, &m);
}

static int
test_size(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *over = sieve_node_tag(test, SIEVE_TAG_OVER);
    const struct sieve_arg *under = sieve_node_tag(test, SIEVE_TAG_UNDER);
    if (over != NULL && over->param != NULL) {
        return run->message->size_bytes > over->param->number ? 1 : 0;
    }
    if (under != NULL && under->param != NULL) {
        return run->message->size_bytes < under->param->number ? 1 : 0;
    }
    return run_fail(run, -EINVAL, test->line, "size without :over or :under");
}

static int
test_mailboxexists(struct run *run, const struct sieve_node *test)
{
    struct rstr *names = NULL;
    size_t name_count = 0;
    int rc = run_expand_list(run, test->positional[0], &names, &name_count);
    if (rc < 0) {
        return rc;
    }
    if (run->env->mailbox_exists == NULL) {
        return 0; /* as Pigeonhole without a mail store: false */
    }
    for (size_t n = 0; n < name_count; n++) {
        rc = run->env->mailbox_exists(run->env->ctx, names[n].text, names[n].len);
        if (rc < 0) {
            return run_fail(run, -EINVAL, test->line, "mailboxexists: lookup failed (%d)", rc);
        }
        if (rc == 0) {
            return 0;
        }
    }
    return 1;
}

static int
test_valid_ext_list(struct run *run, const struct sieve_node *test)
{
    struct rstr *names = NULL;
    size_t name_count = 0;
    int rc = run_expand_list(run, test->positional[0], &names, &name_count);
    if (rc < 0) {
        return rc;
    }
    if (run->env->list_contains == NULL) {
        return 0;
    }
    for (size_t n = 0; n < name_count; n++) {
        char name[256];
        if (names[n].len >= sizeof(name)) {
            return 0;
        }
        memcpy(name, names[n].text, names[n].len);
        name[names[n].len] = '\0';
        /* A lookup of "" in the list tells whether the list exists. */
        rc = run->env->list_contains(run->env->ctx, name, "", 0);
        if (rc == -ENOENT) {
            return 0;
        }
        if (rc < 0) {
            return run_fail(run, -EINVAL, test->line, "valid_ext_list: list \"%s\" failed (%d)",
                            name, rc);
        }
    }
    return 1;
}

static int
run_test(struct run *run, const struct sieve_node *test)
{
    int rc = step(run, test);
    if (rc < 0) {
        return rc;
    }
    switch (test->id) {
    case SIEVE_TEST_TRUE:
        return 1;
    case SIEVE_TEST_FALSE:
        return 0;
    case SIEVE_TEST_NOT:
        ASSERT(test->tests != NULL);
        rc = run_test(run, test->tests);
        return rc < 0 ? rc : !rc;
    case SIEVE_TEST_ALLOF:
    case SIEVE_TEST_ANYOF: {
        bool is_all = test->id == SIEVE_TEST_ALLOF;
        for (const struct sieve_node *t = test->tests; t != NULL; t = t->next) {
            rc = run_test(run, t);
            if (rc < 0) {
                return rc;
            }
            if (is_all && rc == 0) {
                return 0; /* short-circuit, RFC 5228 5.2/5.3 */
            }
            if (!is_all && rc == 1) {
                return 1;
            }
        }
        return is_all ? 1 : 0;
    }
    default:
        break;
    }
    /* A leaf test: what the previous one expanded is no longer needed. */
    tmp_reset(run);
    rc = run_leaf_test(run, test);
    if (rc >= 0 && run->work > run->work_max) {
        /* Scans that match nothing (exists, a field search) count too. */
        return run_fail(run, -E2BIG, test->line, "match work limit (%llu) exceeded",
                        (unsigned long long)run->work_max);
    }
    return rc;
}

static int
run_leaf_test(struct run *run, const struct sieve_node *test)
{
    switch (test->id) {
    case SIEVE_TEST_HEADER:
        return test_header(run, test);
    case SIEVE_TEST_ADDRESS:
        return test_address(run, test);
    case SIEVE_TEST_ENVELOPE:
        return test_envelope(run, test);
    case SIEVE_TEST_EXISTS:
        return test_exists(run, test);
    case SIEVE_TEST_SIZE:
        return test_size(run, test);
    case SIEVE_TEST_STRING:
        return test_string(run, test);
    case SIEVE_TEST_HASFLAG:
        return run_test_hasflag(run, test);
    case SIEVE_TEST_MAILBOXEXISTS:
        return test_mailboxexists(run, test);
    case SIEVE_TEST_SPAMTEST:
        return run_test_spamtest(run, test);
    case SIEVE_TEST_VIRUSTEST:
        return run_test_virustest(run, test);
    case SIEVE_TEST_DATE:
    case SIEVE_TEST_CURRENTDATE:
        return run_test_date(run, test);
    case SIEVE_TEST_BODY:
        return run_test_body(run, test);
    case SIEVE_TEST_DUPLICATE:
        return run_test_duplicate(run, test);
    case SIEVE_TEST_VALID_EXT_LIST:
        return test_valid_ext_list(run, test);
    default:
        break;
    }
    return run_fail(run, -EINVAL, test->line, "test \"%s\" is unknown at run time", test->name);
}

/* ---- actions ---- */

static bool
is_inbox_store(enum sieve_action_type type, const char *target, size_t len)
{
    return type == SIEVE_ACTION_KEEP ||
           (type == SIEVE_ACTION_FILEINTO && run_ascii_iequal(target, len, "INBOX"));
}

static bool
is_reject(enum sieve_action_type type)
{
    return type == SIEVE_ACTION_REJECT || type == SIEVE_ACTION_EREJECT;
}

/* Actions that deliver or answer: RFC 5429 2.2/2.3 (and Pigeonhole)
 * forbid them next to reject/ereject. */
static bool
conflicts_with_reject(const struct sieve_action *a)
{
    return (a->type == SIEVE_ACTION_KEEP && !a->is_implicit) || a->type == SIEVE_ACTION_FILEINTO ||
           a->type == SIEVE_ACTION_REDIRECT || a->type == SIEVE_ACTION_VACATION ||
           is_reject(a->type);
}

static const char *const action_names[] = {"keep",   "discard", "fileinto", "redirect",
                                           "reject", "ereject", "vacation"};

int
run_add_action(struct run *run, enum sieve_action_type type, const char *target,
               size_t target_len, const char *flags, uint32_t line,
               struct sieve_action **action_out)
{
    struct sieve_actions *actions = run->actions;
    struct sieve_action probe = {.type = type};
    if (flags != NULL && flags[0] == '\0') {
        flags = NULL;
    }
    for (size_t i = 0; i < actions->count; i++) {
        struct sieve_action *a = &actions->items[i];
        if ((is_reject(type) && conflicts_with_reject(a)) ||
            (is_reject(a->type) && conflicts_with_reject(&probe))) {
            return run_fail(run, -EINVAL, line, "%s conflicts with the earlier %s (line %u)",
                            action_names[type], action_names[a->type], (unsigned)a->line);
        }
        if (type == SIEVE_ACTION_VACATION && a->type == SIEVE_ACTION_VACATION) {
            return run_fail(run, -EINVAL, line, "duplicate vacation action (line %u)",
                            (unsigned)a->line);
        }
    }
    for (size_t i = 0; i < actions->count; i++) {
        struct sieve_action *a = &actions->items[i];
        bool is_same = false;
        if (is_inbox_store(type, target, target_len) &&
            is_inbox_store(a->type, a->target, a->target_len)) {
            is_same = true; /* one copy in INBOX (RFC 5228 4.1) */
        } else if (a->type == type && a->target_len == target_len &&
                   (target_len == 0 || memcmp(a->target, target, target_len) == 0)) {
            is_same = true; /* duplicate: collapses (RFC 5228 2.10.3) */
        }
        if (!is_same) {
            continue;
        }
        if (flags != NULL) {
            /* Two stores into one mailbox: one copy with both sets of flags. */
            const char *merged = NULL;
            if (run_flags_merge(run, a->flags, flags, &merged) < 0) {
                return run_fail(run, -ENOMEM, line, "out of memory");
            }
            a->flags = merged;
        }
        if (action_out != NULL) {
            *action_out = a;
        }
        return 0;
    }
    if (type == SIEVE_ACTION_REDIRECT && run->redirects >= run->redirects_max) {
        return run_fail(run, -E2BIG, line, "too many redirects (limit %zu)", run->redirects_max);
    }
    if (actions->count >= run->actions_max) {
        return run_fail(run, -E2BIG, line, "too many actions (limit %zu)", run->actions_max);
    }
    const char *t = NULL;
    const char *f = NULL;
    if (target != NULL) {
        t = sieve_arena_strdup(&actions->arena, target, target_len);
    }
    if (flags != NULL) {
        f = sieve_arena_strdup(&actions->arena, flags, strlen(flags));
    }
    if ((target != NULL && t == NULL) || (flags != NULL && f == NULL)) {
        return run_fail(run, actions->arena.is_full ? -E2BIG : -ENOMEM, line,
                        "no room for the result's strings");
    }
    struct sieve_action *a = &actions->items[actions->count++];
    *a = (struct sieve_action){.type = type,
                               .target = t,
                               .target_len = t != NULL ? target_len : 0,
                               .flags = f,
                               .line = line};
    if (type == SIEVE_ACTION_REDIRECT) {
        run->redirects++;
    }
    if (action_out != NULL) {
        *action_out = a;
    }
    return 0;
}

static int
cmd_store(struct run *run, const struct sieve_node *cmd)
{
    const char *flags = run_flags_current(run);
    const struct sieve_arg *flag_list = sieve_node_tag(cmd, SIEVE_TAG_FLAGS);
    int rc = 0;
    if (flag_list != NULL) {
        rc = run_flags_from_list(run, flag_list->param, &flags);
        if (rc < 0) {
            return rc;
        }
    }
    struct sieve_action *a = NULL;
    if (cmd->id == SIEVE_CMD_KEEP) {
        rc = run_add_action(run, SIEVE_ACTION_KEEP, NULL, 0, flags, cmd->line, &a);
        run->implicit_keep = false;
        run->is_kept = true;
        return rc;
    }
    struct rstr target;
    rc = run_expand(run, &cmd->positional[0]->strings[0], &target);
    if (rc < 0) {
        return rc;
    }
    /* The name goes to the store: UTF-8 without controls (Pigeonhole
     * refuses an invalid mailbox name at run time as well). */
    bool is_name_ok = target.len > 0 && utf8_is_valid(target.text, target.len);
    for (size_t i = 0; i < target.len && is_name_ok; i++) {
        is_name_ok = (unsigned char)target.text[i] >= 0x20 && target.text[i] != 0x7f;
    }
    if (!is_name_ok) {
        return run_fail(run, -EINVAL, cmd->line, "fileinto: invalid mailbox name");
    }
    rc = run_add_action(run, SIEVE_ACTION_FILEINTO, target.text, target.len, flags, cmd->line,
                        &a);
    if (rc < 0) {
        return rc;
    }
    if (sieve_node_tag(cmd, SIEVE_TAG_CREATE) != NULL) {
        a->is_create = true;
    }
    if (sieve_node_tag(cmd, SIEVE_TAG_COPY) != NULL) {
        a->is_copy = true;
    } else {
        run->implicit_keep = false;
    }
    return 0;
}

static int
cmd_redirect(struct run *run, const struct sieve_node *cmd)
{
    struct rstr target;
    int rc = run_expand(run, &cmd->positional[0]->strings[0], &target);
    if (rc < 0) {
        return rc;
    }
    /* A constant address was checked by the validator; one made from
     * variables is checked here (Pigeonhole does the same at run time). */
    if (cmd->positional[0]->strings[0].has_variables && !sieve_redirect_address_valid(target.text, target.len)) {
        return run_fail(run, -EINVAL, cmd->line, "redirect: invalid address");
    }
    struct sieve_action *a = NULL;
    rc = run_add_action(run, SIEVE_ACTION_REDIRECT, target.text, target.len, NULL, cmd->line, &a);
    if (rc < 0) {
        return rc;
    }
    if (sieve_node_tag(cmd, SIEVE_TAG_COPY) != NULL) {
        a->is_copy = true; /* RFC 3894: keep stays in effect */
    } else {
        run->implicit_keep = false;
    }
    return 0;
}

static int
cmd_reject(struct run *run, const struct sieve_node *cmd)
{
    struct rstr reason;
    int rc = run_expand(run, &cmd->positional[0]->strings[0], &reason);
    if (rc < 0) {
        return rc;
    }
    rc = run_add_action(run, cmd->id == SIEVE_CMD_REJECT ? SIEVE_ACTION_REJECT
                                                          : SIEVE_ACTION_EREJECT,
                        reason.text, reason.len, NULL, cmd->line, NULL);
    run->implicit_keep = false; /* RFC 5429 2.1 */
    return rc;
}

/* ---- include (RFC 6609) ---- */

static int run_commands(struct run *run, const struct sieve_node *cmd);

static bool
include_same(const struct run_include *a, const struct sieve_script *script, bool is_global,
             const char *name)
{
    return a->script == script || (a->is_global == is_global && strcmp(a->name, name) == 0);
}

static int
cmd_include(struct run *run, const struct sieve_node *cmd)
{
    const struct sieve_string *s = &cmd->positional[0]->strings[0];
    bool is_global = sieve_node_tag(cmd, SIEVE_TAG_GLOBAL) != NULL;
    bool is_once = sieve_node_tag(cmd, SIEVE_TAG_ONCE) != NULL;
    bool is_optional = sieve_node_tag(cmd, SIEVE_TAG_OPTIONAL) != NULL;
    struct run_include entry = {.is_global = is_global};
    if (s->len >= sizeof(entry.name) || memchr(s->text, '\0', s->len) != NULL) {
        return run_fail(run, -EINVAL, cmd->line, "include: invalid script name");
    }
    memcpy(entry.name, s->text, s->len);
    entry.name[s->len] = '\0';
    if (run->env->include_load == NULL) {
        return run_fail(run, -EINVAL, cmd->line, "include \"%s\": no script store", entry.name);
    }
    if (run->stack == NULL) {
        /* The first include comes from the main script, at depth 0. */
        ASSERT(run->depth == 0);
        run->stack = calloc(SIEVE_RUN_INCLUDE_DEPTH_MAX + 1, sizeof(*run->stack));
        run->done = calloc(SIEVE_RUN_INCLUDES_MAX, sizeof(*run->done));
        if (run->stack == NULL || run->done == NULL) {
            return run_fail(run, -ENOMEM, cmd->line, "out of memory");
        }
        run->stack[0].script = run->script;
    }
    const struct sieve_script *script = NULL;
    int rc = run->env->include_load(run->env->ctx, is_global, entry.name, &script);
    if (rc == -ENOENT && is_optional) {
        return 0;
    }
    if (rc < 0 || script == NULL) {
        return run_fail(run, -EINVAL, cmd->line, "include: %s script \"%s\" %s",
                        is_global ? "global" : "personal", entry.name,
                        rc == -ENOENT ? "does not exist" : "cannot be loaded");
    }
    entry.script = script;
    bool is_known = false;
    for (size_t i = 0; i < run->done_count && !is_known; i++) {
        is_known = include_same(&run->done[i], script, is_global, entry.name);
    }
    if (is_known && is_once) {
        return 0; /* :once, already included */
    }
    /* The stack holds the main script (depth 0) and the includes running. */
    for (size_t i = 0; i <= run->depth; i++) {
        if (include_same(&run->stack[i], script, is_global, entry.name)) {
            return run_fail(run, -EINVAL, cmd->line, "include: \"%s\" includes itself (loop)",
                            entry.name);
        }
    }
    if (run->depth + 1 > SIEVE_RUN_INCLUDE_DEPTH_MAX) {
        return run_fail(run, -E2BIG, cmd->line, "include: nesting deeper than %u",
                        (unsigned)SIEVE_RUN_INCLUDE_DEPTH_MAX);
    }
    if (!is_known) {
        /* Pigeonhole's bound counts the scripts of the include tree, not
         * how often each runs (the step limit bounds that). */
        if (run->done_count >= SIEVE_RUN_INCLUDES_MAX) {
            return run_fail(run, -E2BIG, cmd->line, "include: more than %u scripts",
                            (unsigned)SIEVE_RUN_INCLUDES_MAX);
        }
        run->done[run->done_count++] = entry;
    }
    run->stack[++run->depth] = entry;
    struct run_scope scope = {0};
    struct run_scope *outer_scope = run->scope;
    const struct sieve_script *outer_script = run->script;
    run->scope = &scope;
    run->script = script;
    rc = run_commands(run, script->commands);
    run->scope = outer_scope;
    run->script = outer_script;
    run_vars_free(run, &scope);
    run->depth--;
    run->is_returned = false; /* "return" ends the included script only */
    return rc;
}

/* ---- commands ---- */

static int
run_commands(struct run *run, const struct sieve_node *cmd)
{
    bool chain_taken = false; /* an if/elsif of the current chain ran its block */
    for (; cmd != NULL && !run->is_stopped && !run->is_returned; cmd = cmd->next) {
        int rc = step(run, cmd);
        if (rc < 0) {
            return rc;
        }
        tmp_reset(run);
        switch (cmd->id) {
        case SIEVE_CMD_REQUIRE:
            break; /* checked by the validator */
        case SIEVE_CMD_IF:
        case SIEVE_CMD_ELSIF:
            if (cmd->id == SIEVE_CMD_ELSIF && chain_taken) {
                break;
            }
            rc = run_test(run, cmd->tests);
            if (rc < 0) {
                return rc;
            }
            chain_taken = rc == 1;
            rc = chain_taken ? run_commands(run, cmd->block) : 0;
            break;
        case SIEVE_CMD_ELSE:
            rc = !chain_taken ? run_commands(run, cmd->block) : 0;
            break;
        case SIEVE_CMD_STOP:
            run->is_stopped = true;
            break;
        case SIEVE_CMD_RETURN:
            if (run->depth == 0) {
                run->is_stopped = true; /* RFC 6609 3.3: in the main script, as stop */
            } else {
                run->is_returned = true;
            }
            break;
        case SIEVE_CMD_KEEP:
        case SIEVE_CMD_FILEINTO:
            rc = cmd_store(run, cmd);
            break;
        case SIEVE_CMD_DISCARD:
            rc = run_add_action(run, SIEVE_ACTION_DISCARD, NULL, 0, NULL, cmd->line, NULL);
            run->implicit_keep = false;
            break;
        case SIEVE_CMD_REDIRECT:
            rc = cmd_redirect(run, cmd);
            break;
        case SIEVE_CMD_REJECT:
        case SIEVE_CMD_EREJECT:
            rc = cmd_reject(run, cmd);
            break;
        case SIEVE_CMD_SET:
            rc = run_cmd_set(run, cmd);
            break;
        case SIEVE_CMD_SETFLAG:
        case SIEVE_CMD_ADDFLAG:
        case SIEVE_CMD_REMOVEFLAG:
            rc = run_cmd_flags(run, cmd);
            break;
        case SIEVE_CMD_VACATION:
            rc = run_cmd_vacation(run, cmd);
            break;
        case SIEVE_CMD_INCLUDE:
            rc = cmd_include(run, cmd);
            break;
        case SIEVE_CMD_GLOBAL:
            rc = run_cmd_global(run, cmd);
            break;
        case SIEVE_CMD_ADDHEADER:
            rc = run_cmd_addheader(run, cmd);
            break;
        case SIEVE_CMD_DELETEHEADER:
            rc = run_cmd_deleteheader(run, cmd);
            break;
        default:
            rc = run_fail(run, -EINVAL, cmd->line, "command \"%s\" is unknown at run time",
                          cmd->name);
            break;
        }
        if (rc < 0) {
            return rc;
        }
        if (run->work > run->work_max) {
            return run_fail(run, -E2BIG, cmd->line, "match work limit (%llu) exceeded",
                            (unsigned long long)run->work_max);
        }
        if (cmd->id != SIEVE_CMD_IF && cmd->id != SIEVE_CMD_ELSIF) {
            chain_taken = false;
        }
    }
    return 0;
}

/* ---- the result ---- */

static void
actions_fallback(struct sieve_actions *actions)
{
    /* RFC 5228 2.10.6: everything of this result is dropped, the implicit
     * keep alone remains (sieve_actions_finish() adds it). */
    sieve_arena_free(&actions->arena);
    sieve_arena_init(&actions->arena, SIEVE_RUN_ARENA_BYTES_MAX);
    actions->count = 0;
    actions->implicit_keep = true;
    actions->is_keep_explicit = false;
    actions->implicit_flags = NULL;
    actions->header = NULL;
    actions->header_len = 0;
    actions->duplicate_count = 0;
}

void
sieve_actions_init(struct sieve_actions *actions)
{
    ASSERT(actions != NULL);
    memset(actions, 0, sizeof(*actions));
    sieve_arena_init(&actions->arena, SIEVE_RUN_ARENA_BYTES_MAX);
    actions->implicit_keep = true;
}

void
sieve_actions_finish(struct sieve_actions *actions)
{
    ASSERT(actions != NULL);
    if (actions->is_finished) {
        return;
    }
    actions->is_finished = true;
    if (!actions->implicit_keep || actions->is_keep_explicit) {
        return;
    }
    /* keep and fileinto "INBOX" store one copy (RFC 5228 4.1): an
     * explicit one there takes the implicit keep's flags too. */
    for (size_t i = 0; i < actions->count; i++) {
        struct sieve_action *a = &actions->items[i];
        if (!is_inbox_store(a->type, a->target, a->target_len)) {
            continue;
        }
        if (actions->implicit_flags != NULL) {
            size_t a_len = a->flags != NULL ? strlen(a->flags) : 0;
            size_t b_len = strlen(actions->implicit_flags);
            char *p = sieve_arena_alloc(&actions->arena, a_len + b_len + 2);
            if (p != NULL) {
                /* Without memory the explicit store's own flags stay: the
                 * message is still delivered once. */
                (void)snprintf(p, a_len + b_len + 2, "%s%s%s", a->flags != NULL ? a->flags : "",
                               a_len > 0 ? " " : "", actions->implicit_flags);
                a->flags = run_flags_dedup(p);
            }
        }
        return;
    }
    ASSERT(actions->count < SIEVE_RUN_ACTIONS_MAX + 1);
    actions->items[actions->count++] = (struct sieve_action){
        .type = SIEVE_ACTION_KEEP, .flags = actions->implicit_flags, .is_implicit = true};
}

void
sieve_actions_free(struct sieve_actions *actions)
{
    ASSERT(actions != NULL);
    sieve_arena_free(&actions->arena);
    memset(actions, 0, sizeof(*actions));
}

static void
run_release(struct run *run, struct run_scope *main_scope)
{
    run_vars_free(run, main_scope);
    run_vars_free(run, &run->globals);
    for (size_t i = 0; i < SIEVE_RUN_MATCH_VALUES; i++) {
        free(run->match[i].value);
    }
    free(run->flags.value);
    free(run->stack);
    free(run->done);
    run_header_free(run);
    sieve_arena_free(&run->tmp);
}

int
sieve_run(const struct sieve_script *script, const struct sieve_message *message,
          const struct sieve_env *env, const struct sieve_run_limits *limits,
          struct sieve_actions *actions, struct sieve_run_error *error_out)
{
    ASSERT(script != NULL);
    ASSERT(message != NULL);
    ASSERT(actions != NULL);
    ASSERT(error_out != NULL);
    ASSERT(!actions->is_finished);
    static const struct sieve_env env_none;
    error_out->line = 0;
    error_out->text[0] = '\0';
    struct run_scope main_scope = {0};
    struct run run = {
        .message = message,
        .env = env != NULL ? env : &env_none,
        .script = script,
        .steps_max = SIEVE_RUN_STEPS_DEFAULT,
        .actions_max = SIEVE_RUN_ACTIONS_MAX,
        .redirects_max = SIEVE_RUN_REDIRECTS_DEFAULT,
        .work_max = SIEVE_RUN_MATCH_WORK_DEFAULT,
        .implicit_keep = actions->implicit_keep,
        .scope = &main_scope,
        .actions = actions,
        .error = error_out,
    };
    sieve_arena_init(&run.tmp, SIEVE_RUN_TMP_BYTES_MAX);
    sieve_arena_init(&run.edits, SIEVE_RUN_HEADER_BYTES_MAX * 2);
    if (limits != NULL) {
        if (limits->steps_max != 0 && limits->steps_max < run.steps_max) {
            run.steps_max = limits->steps_max;
        }
        if (limits->actions_max != 0 && limits->actions_max < run.actions_max) {
            run.actions_max = limits->actions_max;
        }
        if (limits->redirects_max != 0 && limits->redirects_max < run.redirects_max) {
            run.redirects_max = limits->redirects_max;
        }
        if (limits->match_work_max != 0 && limits->match_work_max < run.work_max) {
            run.work_max = limits->match_work_max;
        }
    }
    for (size_t i = 0; i < actions->count; i++) {
        run.redirects += actions->items[i].type == SIEVE_ACTION_REDIRECT;
    }
    /* An earlier script's edits are what this one sees (RFC 5293 4). */
    const char *h = actions->header != NULL ? actions->header
                    : message->header != NULL ? message->header
                                              : "";
    size_t len = actions->header != NULL ? actions->header_len
                 : message->header != NULL ? message->header_len
                                           : 0;
    if (len > SIEVE_RUN_HEADER_BYTES_MAX) {
        actions_fallback(actions);
        return run_fail(&run, -EFBIG, 0, "header block over %u bytes",
                        (unsigned)SIEVE_RUN_HEADER_BYTES_MAX);
    }
    /* The header block ends at the first empty line. */
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || h[i - 1] == '\n') &&
            (h[i] == '\n' || (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n'))) {
            len = i;
            break;
        }
    }
    int rc = run_header_load(&run, h, len);
    if (rc == 0 && actions->implicit_flags != NULL) {
        /* The internal flags variable goes on from the previous script. */
        rc = run_var_assign(&run, &run.flags, actions->implicit_flags,
                            strlen(actions->implicit_flags));
    }
    if (rc < 0) {
        run_release(&run, &main_scope);
        actions_fallback(actions);
        return run_fail(&run, -ENOMEM, 0, "out of memory");
    }
    rc = run_commands(&run, script->commands);
    if (rc == 0) {
        rc = run_header_render(&run);
    }
    if (rc == 0) {
        const char *flags = NULL;
        if (run.flags.value != NULL && run.flags.len > 0) {
            flags = sieve_arena_strdup(&actions->arena, run.flags.value, run.flags.len);
            if (flags == NULL) {
                rc = run_fail(&run, -ENOMEM, 0, "out of memory");
            }
        }
        actions->implicit_flags = flags;
    }
    run_release(&run, &main_scope);
    if (rc < 0) {
        actions_fallback(actions);
        return rc;
    }
    /* Keep in effect for the next script of a chain: the implicit keep,
     * or an explicit keep of this script (Pigeonhole's multiscript goes
     * on after either). */
    actions->implicit_keep = run.implicit_keep || run.is_kept;
    actions->is_keep_explicit = !run.implicit_keep && run.is_kept;
    return 0;
}
