/*
 * filters/sieve_run_vars.c - variables (RFC 5229) and flags (RFC 5232)
 * for the Sieve interpreter: the scopes (one per running script plus
 * the global one of RFC 6609), ${name} and ${N} expansion of strings,
 * "set" with its modifiers, match values, and the imap4flags commands,
 * the "hasflag" test and flag list normalisation.
 * Bounds (Pigeonhole's): SIEVE_RUN_VARIABLES_MAX variables per scope (one
 * more is a runtime error), SIEVE_RUN_VARIABLE_BYTES_MAX bytes per value
 * (longer values are cut at a character boundary, as Pigeonhole does),
 * SIEVE_RUN_STRING_BYTES_MAX bytes per expanded string (a runtime error).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/assertions.h"
#include "filters/sieve_run_internal.h"

/* ---- scopes ---- */

static bool
is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static struct run_var *
scope_find(struct run_scope *scope, const char *name, size_t name_len)
{
    for (size_t i = 0; i < scope->count; i++) {
        struct run_var *v = &scope->vars[i];
        if (v->name_len != name_len) {
            continue;
        }
        size_t k = 0;
        while (k < name_len && run_lower((unsigned char)name[k]) == (unsigned char)v->name[k]) {
            k++;
        }
        if (k == name_len) {
            return v;
        }
    }
    return NULL;
}

/* The variable name (creating it when is_create), or NULL: absent, or
 * (is_create) the scope is full / no memory, with *rc_out set. */
static struct run_var *
scope_get(struct run_scope *scope, const char *name, size_t name_len, bool is_create,
          int *rc_out)
{
    *rc_out = 0;
    if (scope->vars != NULL) {
        struct run_var *v = scope_find(scope, name, name_len);
        if (v != NULL || !is_create) {
            return v;
        }
    } else if (!is_create) {
        return NULL;
    }
    if (name_len >= SIEVE_RUN_VARIABLE_NAME_BYTES) {
        *rc_out = -EINVAL;
        return NULL;
    }
    if (scope->vars == NULL) {
        scope->vars = calloc(SIEVE_RUN_VARIABLES_MAX, sizeof(*scope->vars));
        if (scope->vars == NULL) {
            *rc_out = -ENOMEM;
            return NULL;
        }
    }
    if (scope->count >= SIEVE_RUN_VARIABLES_MAX) {
        *rc_out = -E2BIG;
        return NULL;
    }
    struct run_var *v = &scope->vars[scope->count++];
    memset(v, 0, sizeof(*v));
    for (size_t k = 0; k < name_len; k++) {
        v->name[k] = (char)run_lower((unsigned char)name[k]);
    }
    v->name[name_len] = '\0';
    v->name_len = name_len;
    return v;
}

void
run_vars_free(struct run *run, struct run_scope *scope)
{
    (void)run;
    if (scope->vars != NULL) {
        for (size_t i = 0; i < scope->count; i++) {
            free(scope->vars[i].value);
        }
        free(scope->vars);
    }
    scope->vars = NULL;
    scope->count = 0;
}

int
run_var_assign(struct run *run, struct run_var *var, const char *value, size_t len)
{
    (void)run;
    if (len > SIEVE_RUN_VARIABLE_BYTES_MAX) {
        /* Cut at a character boundary (Pigeonhole truncates too). */
        len = SIEVE_RUN_VARIABLE_BYTES_MAX;
        while (len > 0 && ((unsigned char)value[len] & 0xc0) == 0x80) {
            len--;
        }
    }
    if (var->cap < len + 1) {
        size_t cap = len + 1 < 64 ? 64 : len + 1;
        char *p = malloc(cap);
        if (p == NULL) {
            return -ENOMEM;
        }
        free(var->value);
        var->value = p;
        var->cap = cap;
    }
    memmove(var->value, value, len);
    var->value[len] = '\0';
    var->len = len;
    return 0;
}

/* Splits "global.name" (RFC 6609 namespace) off name; returns the scope
 * to use or NULL for an unknown namespace. */
static struct run_scope *
var_resolve(struct run *run, const char **name, size_t *name_len, bool is_create, int *rc_out)
{
    *rc_out = 0;
    const char *dot = memchr(*name, '.', *name_len);
    if (dot != NULL) {
        size_t ns_len = (size_t)(dot - *name);
        if (!run_ascii_iequal(*name, ns_len, "global") ||
            !sieve_script_requires(run->script, SIEVE_EXT_INCLUDE)) {
            return NULL;
        }
        *name_len -= ns_len + 1;
        *name = dot + 1;
        return &run->globals;
    }
    struct run_var *v = scope_get(run->scope, *name, *name_len, false, rc_out);
    if (v != NULL && v->is_global_alias) {
        return &run->globals;
    }
    (void)is_create;
    return run->scope;
}

int
run_var_set(struct run *run, const char *name, size_t name_len, const char *value, size_t len,
            uint32_t line)
{
    int rc = 0;
    struct run_scope *scope = var_resolve(run, &name, &name_len, true, &rc);
    if (scope == NULL) {
        return run_fail(run, -EINVAL, line, "variable \"%.*s\": unknown namespace",
                        (int)(name_len > 64 ? 64 : name_len), name);
    }
    struct run_var *v = scope_get(scope, name, name_len, true, &rc);
    if (v == NULL) {
        if (rc == -E2BIG) {
            return run_fail(run, -E2BIG, line, "too many variables (limit %u)",
                            (unsigned)SIEVE_RUN_VARIABLES_MAX);
        }
        return run_fail(run, rc, line, "variable \"%.*s\" cannot be made",
                        (int)(name_len > 64 ? 64 : name_len), name);
    }
    rc = run_var_assign(run, v, value, len);
    if (rc < 0) {
        return run_fail(run, rc, line, "out of memory");
    }
    return 0;
}

struct rstr
run_var_get(struct run *run, const char *name, size_t name_len)
{
    struct rstr empty = {"", 0};
    int rc = 0;
    struct run_scope *scope = var_resolve(run, &name, &name_len, false, &rc);
    if (scope == NULL) {
        return empty; /* unknown namespace: empty */
    }
    struct run_var *v = scope_get(scope, name, name_len, false, &rc);
    if (v == NULL || v->value == NULL) {
        return empty;
    }
    return (struct rstr){v->value, v->len};
}

/* ---- expansion (RFC 5229 section 3) ---- */

/* The length of the reference at s[i..len) ("${...}") and the value it
 * stands for; 0 when s[i..] is not a valid reference (kept verbatim). */
static size_t
reference_at(struct run *run, const char *s, size_t i, size_t len, struct rstr *value_out)
{
    if (i + 3 > len || s[i] != '$' || s[i + 1] != '{') {
        return 0;
    }
    size_t j = i + 2;
    if (s[j] >= '0' && s[j] <= '9') {
        size_t num = 0;
        while (j < len && s[j] >= '0' && s[j] <= '9') {
            if (num < 1000) {
                num = num * 10 + (size_t)(s[j] - '0');
            }
            j++;
        }
        if (j >= len || s[j] != '}') {
            return 0;
        }
        *value_out = (struct rstr){"", 0};
        if (num < run->match_count && run->match[num].value != NULL) {
            *value_out = (struct rstr){run->match[num].value, run->match[num].len};
        }
        return j + 1 - i;
    }
    /* identifier *("." identifier) */
    for (;;) {
        if (j >= len || !is_ident_start(s[j])) {
            return 0;
        }
        while (j < len && is_ident_char(s[j])) {
            j++;
        }
        if (j < len && s[j] == '.') {
            j++;
            continue;
        }
        break;
    }
    if (j >= len || s[j] != '}') {
        return 0;
    }
    *value_out = run_var_get(run, s + i + 2, j - i - 2);
    return j + 1 - i;
}

int
run_expand(struct run *run, const struct sieve_string *s, struct rstr *out)
{
    if (!s->has_variables) {
        *out = (struct rstr){s->text, s->len};
        return 0;
    }
    /* Two passes: measure, then copy into the per-command arena. */
    size_t total = 0;
    for (size_t i = 0; i < s->len;) {
        struct rstr v;
        size_t n = reference_at(run, s->text, i, s->len, &v);
        if (n > 0) {
            total += v.len;
            i += n;
        } else {
            total++;
            i++;
        }
        if (total > SIEVE_RUN_STRING_BYTES_MAX) {
            return run_fail(run, -E2BIG, s->line, "expanded string over %u bytes",
                            (unsigned)SIEVE_RUN_STRING_BYTES_MAX);
        }
    }
    char *p = sieve_arena_alloc(&run->tmp, total + 1);
    if (p == NULL) {
        return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, s->line,
                        "no room for expanded strings");
    }
    size_t o = 0;
    for (size_t i = 0; i < s->len;) {
        struct rstr v;
        size_t n = reference_at(run, s->text, i, s->len, &v);
        if (n > 0) {
            memcpy(p + o, v.text, v.len);
            o += v.len;
            i += n;
        } else {
            p[o++] = s->text[i++];
        }
    }
    ASSERT(o == total);
    p[o] = '\0';
    run->work += o;
    *out = (struct rstr){p, o};
    return 0;
}

int
run_expand_list(struct run *run, const struct sieve_arg *arg, struct rstr **out, size_t *count_out)
{
    struct rstr *list = sieve_arena_alloc(&run->tmp, sizeof(*list) * (arg->string_count + 1));
    if (list == NULL) {
        return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, arg->line,
                        "no room for expanded strings");
    }
    for (size_t i = 0; i < arg->string_count; i++) {
        int rc = run_expand(run, &arg->strings[i], &list[i]);
        if (rc < 0) {
            return rc;
        }
    }
    *out = list;
    *count_out = arg->string_count;
    return 0;
}

/* ---- set (RFC 5229 section 4) ---- */

static size_t
utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        i += run_utf8_char_len(s + i, len - i);
        n++;
    }
    return n;
}

int
run_cmd_set(struct run *run, const struct sieve_node *cmd)
{
    const struct sieve_string *name = &cmd->positional[0]->strings[0];
    struct rstr value;
    int rc = run_expand(run, &cmd->positional[1]->strings[0], &value);
    if (rc < 0) {
        return rc;
    }
    /* Modifiers in precedence order (RFC 5229 4.1): 40 :lower/:upper,
     * 30 :lowerfirst/:upperfirst, 20 :quotewildcard, 10 :length. */
    bool lower = sieve_node_tag(cmd, SIEVE_TAG_LOWER) != NULL;
    bool upper = sieve_node_tag(cmd, SIEVE_TAG_UPPER) != NULL;
    bool lower_first = sieve_node_tag(cmd, SIEVE_TAG_LOWERFIRST) != NULL;
    bool upper_first = sieve_node_tag(cmd, SIEVE_TAG_UPPERFIRST) != NULL;
    bool quote = sieve_node_tag(cmd, SIEVE_TAG_QUOTEWILDCARD) != NULL;
    bool length = sieve_node_tag(cmd, SIEVE_TAG_LENGTH) != NULL;
    if (lower || upper || lower_first || upper_first || quote || length) {
        char *p = sieve_arena_alloc(&run->tmp, value.len * 2 + 24);
        if (p == NULL) {
            return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, cmd->line,
                            "no room for expanded strings");
        }
        memcpy(p, value.text, value.len);
        size_t len = value.len;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (lower) {
                p[i] = (char)run_lower(c);
            } else if (upper && c >= 'a' && c <= 'z') {
                p[i] = (char)(c - ('a' - 'A'));
            }
        }
        if (len > 0 && lower_first) {
            p[0] = (char)run_lower((unsigned char)p[0]);
        } else if (len > 0 && upper_first && p[0] >= 'a' && p[0] <= 'z') {
            p[0] = (char)(p[0] - ('a' - 'A'));
        }
        if (quote) {
            /* Backslash before *, ? and \ so the value matches itself under :matches. */
            char *q = p + len;
            size_t o = 0;
            for (size_t i = 0; i < len; i++) {
                if (p[i] == '*' || p[i] == '?' || p[i] == '\\') {
                    q[o++] = '\\';
                }
                q[o++] = p[i];
            }
            char *r = sieve_arena_alloc(&run->tmp, o + 1);
            if (r == NULL) {
                return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, cmd->line,
                                "no room for expanded strings");
            }
            memcpy(r, q, o);
            p = r;
            len = o;
        }
        if (length) {
            char *r = sieve_arena_alloc(&run->tmp, 24);
            if (r == NULL) {
                return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, cmd->line,
                                "no room for expanded strings");
            }
            size_t n = utf8_count(p, len);
            char digits[24];
            size_t d = 0;
            do {
                digits[d++] = (char)('0' + n % 10);
                n /= 10;
            } while (n > 0);
            for (size_t i = 0; i < d; i++) {
                r[i] = digits[d - 1 - i];
            }
            p = r;
            len = d;
        }
        value = (struct rstr){p, len};
    }
    return run_var_set(run, name->text, name->len, value.text, value.len, cmd->line);
}

int
run_cmd_global(struct run *run, const struct sieve_node *cmd)
{
    const struct sieve_arg *names = cmd->positional[0];
    for (size_t i = 0; i < names->string_count; i++) {
        const struct sieve_string *s = &names->strings[i];
        if (memchr(s->text, '.', s->len) != NULL) {
            continue; /* "global.x" is global already */
        }
        int rc = 0;
        struct run_var *v = scope_get(run->scope, s->text, s->len, true, &rc);
        if (v == NULL) {
            return run_fail(run, rc == -E2BIG ? -E2BIG : rc, cmd->line,
                            "too many variables (limit %u)", (unsigned)SIEVE_RUN_VARIABLES_MAX);
        }
        v->is_global_alias = true;
    }
    return 0;
}

int
run_set_match_values(struct run *run, const char *value, size_t len, const size_t *caps,
                     size_t cap_count)
{
    /* ${0} is the whole value, ${N} the Nth wildcard's text. */
    int rc = run_var_assign(run, &run->match[0], value, len);
    size_t n = 1;
    for (size_t i = 0; rc == 0 && i < cap_count && n < SIEVE_RUN_MATCH_VALUES; i++, n++) {
        rc = run_var_assign(run, &run->match[n], value + caps[2 * i], caps[2 * i + 1]);
    }
    for (size_t i = n; rc == 0 && i < SIEVE_RUN_MATCH_VALUES; i++) {
        rc = run_var_assign(run, &run->match[i], "", 0);
    }
    run->match_count = SIEVE_RUN_MATCH_VALUES;
    return rc;
}

/* ---- flags (RFC 5232) ---- */

static const char *const system_flags[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
                                           "\\Draft"};

/* The canonical spelling of flag tok[0..len), or NULL when the flag is
 * not valid (an unknown system flag, or a keyword holding IMAP atom
 * specials): such flags are dropped, as Pigeonhole does. */
static const char *
flag_canonical(const char *tok, size_t len, bool *is_system_out)
{
    *is_system_out = false;
    if (tok[0] == '\\') {
        for (size_t i = 0; i < sizeof(system_flags) / sizeof(system_flags[0]); i++) {
            if (run_ascii_iequal(tok, len, system_flags[i])) {
                *is_system_out = true;
                return system_flags[i];
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tok[i];
        if (c <= 0x20 || c == 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' ||
            c == '"' || c == '\\' || c == ']') {
            return NULL;
        }
    }
    return tok;
}

/* Whether list (normalised) holds tok. */
static bool
flags_has(const char *list, size_t list_len, const char *tok, size_t len, bool is_system)
{
    for (size_t i = 0; i < list_len;) {
        size_t j = i;
        while (j < list_len && list[j] != ' ') {
            j++;
        }
        if (j - i == len) {
            bool same = true;
            for (size_t k = 0; k < len && same; k++) {
                same = is_system ? run_lower((unsigned char)list[i + k]) ==
                                       run_lower((unsigned char)tok[k])
                                 : list[i + k] == tok[k];
            }
            if (same) {
                return true;
            }
        }
        i = j + 1;
    }
    return false;
}

/* Appends the flags of in[0..in_len) (space-separated) not yet in
 * out[0..*out_len) (room for in_len + *out_len + 1 bytes); with
 * is_remove, keeps only out's flags not in in. */
static void
flags_apply(char *out, size_t *out_len, const char *in, size_t in_len)
{
    for (size_t i = 0; i < in_len;) {
        while (i < in_len && in[i] == ' ') {
            i++;
        }
        size_t j = i;
        while (j < in_len && in[j] != ' ') {
            j++;
        }
        if (j > i) {
            bool is_system = false;
            const char *canon = flag_canonical(in + i, j - i, &is_system);
            size_t len = j - i;
            if (canon != NULL && !flags_has(out, *out_len, canon, len, is_system)) {
                if (*out_len > 0) {
                    out[(*out_len)++] = ' ';
                }
                memcpy(out + *out_len, canon, len);
                *out_len += len;
            }
        }
        i = j;
    }
    out[*out_len] = '\0';
}

static size_t
flags_remove(char *list, size_t list_len, const char *in, size_t in_len)
{
    char *w = list;
    size_t o = 0;
    for (size_t i = 0; i < list_len;) {
        size_t j = i;
        while (j < list_len && list[j] != ' ') {
            j++;
        }
        bool is_removed = false;
        for (size_t a = 0; a < in_len && !is_removed;) {
            while (a < in_len && in[a] == ' ') {
                a++;
            }
            size_t b = a;
            while (b < in_len && in[b] != ' ') {
                b++;
            }
            if (b > a) {
                bool is_system = list[i] == '\\';
                is_removed = flags_has(list + i, j - i, in + a, b - a, is_system);
            }
            a = b;
        }
        if (!is_removed && j > i) {
            if (o > 0) {
                w[o++] = ' ';
            }
            memmove(w + o, list + i, j - i);
            o += j - i;
        }
        i = j + 1;
    }
    w[o] = '\0';
    return o;
}

/* The normalised flags of a string list, in the per-command arena. */
static int
flags_join(struct run *run, const struct sieve_arg *list, struct rstr *out)
{
    struct rstr *items = NULL;
    size_t count = 0;
    int rc = run_expand_list(run, list, &items, &count);
    if (rc < 0) {
        return rc;
    }
    size_t total = 1;
    for (size_t i = 0; i < count; i++) {
        total += items[i].len + 1;
    }
    char *p = sieve_arena_alloc(&run->tmp, total);
    if (p == NULL) {
        return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, list->line,
                        "no room for flags");
    }
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        flags_apply(p, &len, items[i].text, items[i].len);
    }
    *out = (struct rstr){p, len};
    return 0;
}

/* The variable a flag command works on: the named one, or the internal. */
static int
flag_target(struct run *run, const struct sieve_string *name, uint32_t line,
            struct run_var **var_out)
{
    if (name == NULL) {
        *var_out = &run->flags;
        return 0;
    }
    const char *n = name->text;
    size_t n_len = name->len;
    int rc = 0;
    struct run_scope *scope = var_resolve(run, &n, &n_len, true, &rc);
    if (scope == NULL) {
        return run_fail(run, -EINVAL, line, "variable: unknown namespace");
    }
    struct run_var *v = scope_get(scope, n, n_len, true, &rc);
    if (v == NULL) {
        return run_fail(run, rc == 0 ? -EINVAL : rc, line, "too many variables (limit %u)",
                        (unsigned)SIEVE_RUN_VARIABLES_MAX);
    }
    *var_out = v;
    return 0;
}

int
run_cmd_flags(struct run *run, const struct sieve_node *cmd)
{
    const struct sieve_arg *names = cmd->positional_count == 2 ? cmd->positional[0] : NULL;
    const struct sieve_arg *list = cmd->positional[cmd->positional_count - 1];
    struct rstr in;
    int rc = flags_join(run, list, &in);
    if (rc < 0) {
        return rc;
    }
    size_t targets = names != NULL ? names->string_count : 1;
    for (size_t t = 0; t < targets; t++) {
        struct run_var *var = NULL;
        rc = flag_target(run, names != NULL ? &names->strings[t] : NULL, cmd->line, &var);
        if (rc < 0) {
            return rc;
        }
        size_t cur_len = var->value != NULL ? var->len : 0;
        char *p = sieve_arena_alloc(&run->tmp, cur_len + in.len + 2);
        if (p == NULL) {
            return run_fail(run, run->tmp.is_full ? -E2BIG : -ENOMEM, cmd->line,
                            "no room for flags");
        }
        size_t len = 0;
        if (cmd->id == SIEVE_CMD_SETFLAG) {
            flags_apply(p, &len, in.text, in.len);
        } else {
            /* The variable's value is normalised too: it may have been "set". */
            flags_apply(p, &len, var->value != NULL ? var->value : "", cur_len);
            if (cmd->id == SIEVE_CMD_ADDFLAG) {
                flags_apply(p, &len, in.text, in.len);
            } else {
                len = flags_remove(p, len, in.text, in.len);
            }
        }
        /* A value cut at the variable bound must not end in half a flag. */
        if (len > SIEVE_RUN_VARIABLE_BYTES_MAX) {
            len = SIEVE_RUN_VARIABLE_BYTES_MAX;
            while (len > 0 && p[len] != ' ') {
                len--;
            }
        }
        rc = run_var_assign(run, var, p, len);
        if (rc < 0) {
            return run_fail(run, rc, cmd->line, "out of memory");
        }
    }
    return 0;
}

int
run_test_hasflag(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *names = test->positional_count == 2 ? test->positional[0] : NULL;
    const struct sieve_arg *keys = test->positional[test->positional_count - 1];
    struct matcher m;
    int rc = run_matcher_init(run, test, keys, &m);
    if (rc < 0) {
        return rc;
    }
    struct rstr *vars = NULL;
    size_t var_count = 1;
    if (names != NULL) {
        rc = run_expand_list(run, names, &vars, &var_count);
        if (rc < 0) {
            return rc;
        }
    }
    for (size_t t = 0; t < var_count; t++) {
        struct rstr value;
        if (vars == NULL) {
            value = (struct rstr){run->flags.value != NULL ? run->flags.value : "", run->flags.len};
        } else {
            value = run_var_get(run, vars[t].text, vars[t].len);
        }
        /* Each flag of the variable is one value (RFC 5232 section 4). */
        for (size_t i = 0; i < value.len;) {
            while (i < value.len && value.text[i] == ' ') {
                i++;
            }
            size_t j = i;
            while (j < value.len && value.text[j] != ' ') {
                j++;
            }
            if (j > i) {
                rc = run_matcher_value(run, &m, value.text + i, j - i);
                if (rc != 0) {
                    return rc;
                }
            }
            i = j;
        }
    }
    return run_matcher_end(run, &m);
}

int
run_flags_from_list(struct run *run, const struct sieve_arg *list, const char **flags_out)
{
    struct rstr in;
    int rc = flags_join(run, list, &in);
    if (rc < 0) {
        return rc;
    }
    *flags_out = in.text;
    return 0;
}

const char *
run_flags_current(struct run *run)
{
    if (run->flags.value == NULL) {
        return "";
    }
    /* "set" may have written the internal variable? No: it has no name,
     * so it holds only what the flag commands normalised. */
    return run->flags.value;
}

int
run_flags_merge(struct run *run, const char *a, const char *b, const char **out)
{
    size_t a_len = a != NULL ? strlen(a) : 0;
    size_t b_len = b != NULL ? strlen(b) : 0;
    char *p = sieve_arena_alloc(&run->actions->arena, a_len + b_len + 2);
    if (p == NULL) {
        return -ENOMEM;
    }
    size_t len = 0;
    flags_apply(p, &len, a != NULL ? a : "", a_len);
    flags_apply(p, &len, b != NULL ? b : "", b_len);
    *out = len > 0 ? p : NULL;
    return 0;
}

/* flags normalised in place (each once, invalid ones dropped); returns
 * flags. Used where no arena is at hand (sieve_actions_finish). */
char *
run_flags_dedup(char *flags)
{
    size_t in_len = strlen(flags);
    char *copy = malloc(in_len + 1);
    if (copy == NULL) {
        return flags; /* unchanged: duplicates are harmless to the store */
    }
    memcpy(copy, flags, in_len + 1);
    size_t len = 0;
    flags_apply(flags, &len, copy, in_len);
    free(copy);
    return flags;
}
