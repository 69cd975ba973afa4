/*
 * filters/sieve_run.c - the Sieve interpreter
 * (see sieve_run.h): walks the validated tree, reads header fields from
 * the caller's header block (names case-insensitive, values unfolded and
 * trimmed), parses RFC 5322 address lists (display names, comments,
 * quoted strings, routes, groups), matches with :is/:contains/:matches
 * under the three comparators and collects the actions.
 * Bounds: steps (commands + tests visited), distinct actions, distinct
 * redirects, match work (byte comparisons over the whole run), header
 * block bytes. Recursion is bounded by the validator's block and test
 * depth limits (32 each by default).
 */
#include "filters/sieve_run.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct run {
    const struct sieve_message *message;
    const struct sieve_env *env;
    const char *header; /* the header block, up to (not including) the blank line */
    size_t header_len;
    char *scratch; /* header_len + 1 bytes: one unfolded value */
    char *scratch_addr; /* header_len + 1 bytes: one address */
    uint64_t steps;
    uint64_t steps_max;
    size_t actions_max;
    size_t redirects_max;
    size_t redirects;
    uint64_t work;
    uint64_t work_max;
    bool implicit_keep;
    bool is_stopped;
    struct sieve_actions *actions;
    struct sieve_run_error *error;
};

static bool ascii_iequal(const char *a, size_t a_len, const char *b);

static int run_fail(struct run *run, int rc, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
run_fail(struct run *run, int rc, uint32_t line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    run->error->line = line;
    (void)vsnprintf(run->error->text, sizeof(run->error->text), fmt, ap);
    va_end(ap);
    return rc;
}

static unsigned char
lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static bool
chars_equal(unsigned char a, unsigned char b, enum sieve_comparator comparator)
{
    if (comparator == SIEVE_CMP_ASCII_CASEMAP) {
        return lower(a) == lower(b);
    }
    return a == b;
}

/* Bytes of the UTF-8 character starting at s[0] (1 for a stray byte),
 * at most left. */
static size_t
utf8_char_len(const char *s, size_t left)
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

int
sieve_glob_match(const char *value, size_t value_len, const char *pattern, size_t pattern_len,
                 enum sieve_comparator comparator, uint64_t *work, uint64_t work_max)
{
    size_t p = 0;
    size_t v = 0;
    size_t star_p = SIZE_MAX; /* pattern index after the last '*' */
    size_t star_v = 0;        /* where that '*' match currently ends */
    while (v < value_len) {
        if (++*work > work_max) {
            return -E2BIG;
        }
        if (p < pattern_len && pattern[p] == '*') {
            p++;
            star_p = p;
            star_v = v;
            continue;
        }
        if (p < pattern_len && pattern[p] == '?') {
            p++;
            v += utf8_char_len(value + v, value_len - v);
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
        star_v += utf8_char_len(value + star_v, value_len - star_v);
        v = star_v;
        p = star_p;
    }
    while (p < pattern_len && pattern[p] == '*') {
        p++;
    }
    return p == pattern_len ? 1 : 0;
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
 * string not starting with a digit is positive infinity. */
static bool
numeric_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t ai = 0;
    size_t bi = 0;
    bool a_inf = a_len == 0 || a[0] < '0' || a[0] > '9';
    bool b_inf = b_len == 0 || b[0] < '0' || b[0] > '9';
    if (a_inf || b_inf) {
        return a_inf && b_inf;
    }
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
    return ae - ai == be - bi && memcmp(a + ai, b + bi, ae - ai) == 0;
}

/* Whether value matches any key of keys under node's match type and
 * comparator: 1, 0 or < 0 (error recorded). */
static int
match_keys(struct run *run, const struct sieve_node *node, const char *value, size_t value_len,
           const struct sieve_arg *keys)
{
    for (size_t k = 0; k < keys->string_count; k++) {
        const struct sieve_string *key = &keys->strings[k];
        int rc = 0;
        if (node->comparator == SIEVE_CMP_ASCII_NUMERIC) {
            if (node->match != SIEVE_MATCH_IS) {
                return run_fail(run, -ENOTSUP, node->line,
                                "comparator i;ascii-numeric supports only :is at run time");
            }
            rc = numeric_equal(value, value_len, key->text, key->len) ? 1 : 0;
        } else if (node->match == SIEVE_MATCH_IS) {
            rc = 0;
            if (value_len == key->len) {
                rc = 1;
                for (size_t i = 0; i < value_len; i++) {
                    if (!chars_equal((unsigned char)value[i], (unsigned char)key->text[i],
                                     node->comparator)) {
                        rc = 0;
                        break;
                    }
                }
                run->work += value_len;
            }
        } else if (node->match == SIEVE_MATCH_CONTAINS) {
            rc = contains_match(run, value, value_len, key->text, key->len, node->comparator);
        } else if (node->match == SIEVE_MATCH_MATCHES) {
            rc = sieve_glob_match(value, value_len, key->text, key->len, node->comparator,
                                  &run->work, run->work_max);
        } else {
            return run_fail(run, -ENOTSUP, node->line,
                            "match type :value/:count is not supported at run time yet");
        }
        if (rc == -E2BIG || run->work > run->work_max) {
            return run_fail(run, -E2BIG, node->line, "match work limit (%llu) exceeded",
                            (unsigned long long)run->work_max);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- header fields ---- */

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* The next field named name[0..name_len) at or after *pos: its value
 * unfolded (CR and LF of folds removed) and trimmed into run->scratch.
 * Returns true and sets *value_len_out, or false at the end. */
static bool
header_next(struct run *run, size_t *pos, const char *name, size_t name_len,
            size_t *value_len_out)
{
    const char *h = run->header;
    size_t len = run->header_len;
    size_t i = *pos;
    while (i < len) {
        size_t line_start = i;
        size_t colon = SIZE_MAX;
        size_t j = i;
        while (j < len && h[j] != '\n') {
            if (colon == SIZE_MAX && h[j] == ':') {
                colon = j;
            }
            j++;
        }
        /* field ends at a line not starting with WSP */
        size_t end = j;
        while (end < len && end + 1 < len && is_wsp(h[end + 1])) {
            end++;
            while (end < len && h[end] != '\n') {
                end++;
            }
        }
        i = end < len ? end + 1 : len;
        if (colon == SIZE_MAX || colon >= j) {
            continue; /* not a field (or a stray continuation): skipped */
        }
        size_t nlen = colon - line_start;
        while (nlen > 0 && is_wsp(h[line_start + nlen - 1])) {
            nlen--;
        }
        if (nlen != name_len) {
            continue;
        }
        bool same = true;
        for (size_t k = 0; k < nlen; k++) {
            if (lower((unsigned char)h[line_start + k]) != lower((unsigned char)name[k])) {
                same = false;
                break;
            }
        }
        if (!same) {
            continue;
        }
        size_t out = 0;
        for (size_t k = colon + 1; k < end; k++) {
            if (h[k] != '\r' && h[k] != '\n') {
                run->scratch[out++] = h[k];
            }
        }
        size_t start = 0;
        while (start < out && is_wsp(run->scratch[start])) {
            start++;
        }
        while (out > start && is_wsp(run->scratch[out - 1])) {
            out--;
        }
        memmove(run->scratch, run->scratch + start, out - start);
        run->scratch[out - start] = '\0';
        *value_len_out = out - start;
        *pos = i;
        return true;
    }
    *pos = len;
    return false;
}

/* ---- RFC 2047 encoded words (header test values) ---- */

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)lower((unsigned char)c);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

static int
base64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes the encoded word at in[0..len) ("=?charset?B|Q?text?=", charset
 * UTF-8 or US-ASCII, RFC 2231 "*lang" ignored) into out; returns the bytes
 * written (never more than *consumed_out) or SIZE_MAX when in does not
 * start with such a word (other charsets stay undecoded). */
static size_t
decode_word(const char *in, size_t len, char *out, size_t *consumed_out)
{
    size_t i = 2; /* after "=?" */
    size_t cs = i;
    while (i < len && in[i] != '?' && in[i] != '*' && !is_wsp(in[i])) {
        i++;
    }
    size_t cs_len = i - cs;
    while (i < len && in[i] != '?' && !is_wsp(in[i])) {
        i++;
    }
    if (i + 3 >= len || in[i] != '?' || in[i + 2] != '?') {
        return SIZE_MAX;
    }
    if (!ascii_iequal(in + cs, cs_len, "utf-8") && !ascii_iequal(in + cs, cs_len, "us-ascii")) {
        return SIZE_MAX;
    }
    char enc = (char)lower((unsigned char)in[i + 1]);
    size_t t = i + 3;
    size_t te = t;
    while (te + 1 < len && !(in[te] == '?' && in[te + 1] == '=')) {
        if (is_wsp(in[te]) || in[te] == '?') {
            return SIZE_MAX;
        }
        te++;
    }
    if (te + 1 >= len) {
        return SIZE_MAX;
    }
    size_t o = 0;
    if (enc == 'q') {
        for (size_t k = t; k < te; k++) {
            if (in[k] == '_') {
                out[o++] = ' ';
            } else if (in[k] == '=' && k + 2 < te + 1 && hex_value(in[k + 1]) >= 0 &&
                       hex_value(in[k + 2]) >= 0) {
                out[o++] = (char)(hex_value(in[k + 1]) * 16 + hex_value(in[k + 2]));
                k += 2;
            } else {
                out[o++] = in[k];
            }
        }
    } else if (enc == 'b') {
        uint32_t acc = 0;
        unsigned bits = 0;
        for (size_t k = t; k < te; k++) {
            if (in[k] == '=') {
                break;
            }
            int v = base64_value(in[k]);
            if (v < 0) {
                return SIZE_MAX;
            }
            acc = (acc << 6) | (uint32_t)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                out[o++] = (char)((acc >> bits) & 0xff);
            }
        }
    } else {
        return SIZE_MAX;
    }
    *consumed_out = te + 2;
    return o;
}

/* in[0..len) with its encoded words decoded into out (room for len
 * bytes: decoding never grows); white space between two adjacent encoded
 * words is dropped (RFC 2047 section 6.2). Returns the length. */
static size_t
decode_2047(const char *in, size_t len, char *out)
{
    size_t o = 0;
    size_t i = 0;
    bool after_word = false;
    size_t ws_start = SIZE_MAX; /* out position of white space after a word */
    while (i < len) {
        if (in[i] == '=' && i + 1 < len && in[i + 1] == '?') {
            size_t at = (after_word && ws_start != SIZE_MAX) ? ws_start : o;
            size_t consumed = 0;
            size_t n = decode_word(in + i, len - i, out + at, &consumed);
            if (n != SIZE_MAX) {
                assert(n <= consumed);
                o = at + n;
                i += consumed;
                after_word = true;
                ws_start = SIZE_MAX;
                continue;
            }
        }
        if (is_wsp(in[i])) {
            if (after_word && ws_start == SIZE_MAX) {
                ws_start = o;
            }
        } else {
            after_word = false;
            ws_start = SIZE_MAX;
        }
        out[o++] = in[i++];
    }
    return o;
}

/* ---- addresses (RFC 5322 3.4, leniently) ---- */

/* The next address of the list value[0..len) from *pos into out (its
 * addr-spec with comments, folding white space and quotes removed).
 * Returns true with *out_len, or false at the end. Groups give their
 * members; an empty group gives nothing. */
static bool
address_next(const char *value, size_t len, size_t *pos, char *out, size_t *out_len)
{
    size_t i = *pos;
    while (i < len) {
        size_t n = 0;
        bool in_angle = false;
        bool angle_done = false;
        bool in_quote = false;
        size_t comment = 0;
        for (; i < len; i++) {
            char c = value[i];
            if (in_quote) {
                if (c == '\\' && i + 1 < len) {
                    i++;
                    c = value[i];
                } else if (c == '"') {
                    in_quote = false;
                    continue;
                }
                if (!angle_done) {
                    out[n++] = c;
                }
                continue;
            }
            if (comment > 0) {
                if (c == '\\' && i + 1 < len) {
                    i++;
                } else if (c == '(') {
                    comment++;
                } else if (c == ')') {
                    comment--;
                }
                continue;
            }
            if (c == '(') {
                comment = 1;
            } else if (c == '"') {
                in_quote = true;
            } else if (c == '<' && !in_angle) {
                in_angle = true;
                angle_done = false;
                n = 0;
            } else if (c == '>' && in_angle) {
                in_angle = false;
                angle_done = true;
            } else if (c == ':') {
                n = 0; /* a group's name, or a route inside <> */
                if (!in_angle) {
                    angle_done = false;
                }
            } else if ((c == ',' && !in_angle) || c == ';') {
                i++;
                break;
            } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
                continue;
            } else if (!angle_done) {
                if (c == ',' && in_angle) {
                    n = 0; /* route list "@a,@b:" */
                } else {
                    out[n++] = c;
                }
            }
        }
        if (n > 0) {
            out[n] = '\0';
            *out_len = n;
            *pos = i;
            return true;
        }
    }
    *pos = len;
    return false;
}

/* The address part of addr[0..len) asked: sets *part and *part_len;
 * false when the address has none (no '@' for :localpart/:domain). */
static bool
address_part(enum sieve_address_part which, const char *addr, size_t len, const char **part,
             size_t *part_len)
{
    const char *at = NULL;
    for (size_t i = len; i > 0; i--) {
        if (addr[i - 1] == '@') {
            at = addr + i - 1;
            break;
        }
    }
    if (which == SIEVE_ADDR_ALL) {
        *part = addr;
        *part_len = len;
        return true;
    }
    if (at == NULL) {
        return false;
    }
    if (which == SIEVE_ADDR_LOCALPART) {
        *part = addr;
        *part_len = (size_t)(at - addr);
        return true;
    }
    if (which == SIEVE_ADDR_DOMAIN) {
        *part = at + 1;
        *part_len = len - (size_t)(at - addr) - 1;
        return true;
    }
    return false;
}

/* ---- tests ---- */

static int run_test(struct run *run, const struct sieve_node *test);

static int
step(struct run *run, const struct sieve_node *node)
{
    if (++run->steps > run->steps_max) {
        return run_fail(run, -E2BIG, node->line, "step limit (%llu) exceeded",
                        (unsigned long long)run->steps_max);
    }
    return 0;
}

static int
test_header(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *names = test->positional[0];
    const struct sieve_arg *keys = test->positional[1];
    assert(names != NULL && keys != NULL);
    for (size_t n = 0; n < names->string_count; n++) {
        size_t pos = 0;
        size_t value_len = 0;
        while (header_next(run, &pos, names->strings[n].text, names->strings[n].len,
                           &value_len)) {
            /* RFC 5228 2.7.2: header values are matched decoded. */
            size_t decoded_len = decode_2047(run->scratch, value_len, run->scratch_addr);
            run->work += value_len;
            int rc = match_keys(run, test, run->scratch_addr, decoded_len, keys);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int
test_exists(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *names = test->positional[0];
    assert(names != NULL);
    for (size_t n = 0; n < names->string_count; n++) {
        size_t pos = 0;
        size_t value_len = 0;
        if (!header_next(run, &pos, names->strings[n].text, names->strings[n].len,
                         &value_len)) {
            return 0;
        }
    }
    return 1;
}

static int
match_address(struct run *run, const struct sieve_node *test, const char *addr, size_t len,
              const struct sieve_arg *keys)
{
    const char *part = NULL;
    size_t part_len = 0;
    if (test->address_part != SIEVE_ADDR_ALL && test->address_part != SIEVE_ADDR_LOCALPART &&
        test->address_part != SIEVE_ADDR_DOMAIN) {
        return run_fail(run, -ENOTSUP, test->line,
                        "address part :user/:detail is not supported at run time yet");
    }
    if (!address_part(test->address_part, addr, len, &part, &part_len)) {
        return 0;
    }
    return match_keys(run, test, part, part_len, keys);
}

static int
test_address(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *names = test->positional[0];
    const struct sieve_arg *keys = test->positional[1];
    assert(names != NULL && keys != NULL);
    for (size_t n = 0; n < names->string_count; n++) {
        size_t pos = 0;
        size_t value_len = 0;
        while (header_next(run, &pos, names->strings[n].text, names->strings[n].len,
                           &value_len)) {
            size_t apos = 0;
            size_t addr_len = 0;
            while (address_next(run->scratch, value_len, &apos, run->scratch_addr,
                                &addr_len)) {
                run->work += addr_len;
                int rc = match_address(run, test, run->scratch_addr, addr_len, keys);
                if (rc != 0) {
                    return rc;
                }
            }
        }
    }
    return 0;
}

static bool
ascii_iequal(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) {
            return false;
        }
    }
    return true;
}

static int
test_envelope(struct run *run, const struct sieve_node *test)
{
    const struct sieve_arg *parts = test->positional[0];
    const struct sieve_arg *keys = test->positional[1];
    assert(parts != NULL && keys != NULL);
    for (size_t n = 0; n < parts->string_count; n++) {
        const struct sieve_string *s = &parts->strings[n];
        const char *value = NULL;
        if (ascii_iequal(s->text, s->len, "from")) {
            value = run->message->envelope_from;
        } else if (ascii_iequal(s->text, s->len, "to")) {
            value = run->message->envelope_to;
        } else if (ascii_iequal(s->text, s->len, "auth")) {
            value = run->message->auth_user;
        }
        if (value == NULL) {
            continue;
        }
        size_t len = strlen(value);
        int rc = 0;
        if (len == 0) {
            /* RFC 5228 5.4: the null reverse-path matches "" whatever the part. */
            rc = match_keys(run, test, "", 0, keys);
        } else {
            rc = match_address(run, test, value, len, keys);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
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
    return run_fail(run, -ENOTSUP, test->line, "size without :over or :under");
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
        assert(test->tests != NULL);
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
    case SIEVE_TEST_HEADER:
        if (sieve_node_tag(test, SIEVE_TAG_INDEX) != NULL) {
            break;
        }
        return test_header(run, test);
    case SIEVE_TEST_ADDRESS:
        if (sieve_node_tag(test, SIEVE_TAG_INDEX) != NULL) {
            break;
        }
        return test_address(run, test);
    case SIEVE_TEST_ENVELOPE:
        return test_envelope(run, test);
    case SIEVE_TEST_EXISTS:
        return test_exists(run, test);
    case SIEVE_TEST_SIZE:
        return test_size(run, test);
    default:
        break;
    }
    return run_fail(run, -ENOTSUP, test->line, "test \"%s\" is not supported at run time yet",
                    test->name);
}

/* ---- actions ---- */

static int
add_action(struct run *run, enum sieve_action_type type, const struct sieve_string *target,
           uint32_t line)
{
    struct sieve_actions *actions = run->actions;
    /* keep and fileinto "INBOX" (any case, RFC 3501 5.1) store the same copy. */
    bool is_inbox = type == SIEVE_ACTION_KEEP ||
                    (type == SIEVE_ACTION_FILEINTO && ascii_iequal(target->text, target->len, "INBOX"));
    for (size_t i = 0; i < actions->count; i++) {
        const struct sieve_action *a = &actions->items[i];
        bool a_inbox = a->type == SIEVE_ACTION_KEEP ||
                       (a->type == SIEVE_ACTION_FILEINTO &&
                        ascii_iequal(a->target, a->target_len, "INBOX"));
        if (is_inbox && a_inbox) {
            return 0; /* one copy in INBOX (RFC 5228 4.1) */
        }
        if (a->type != type) {
            continue;
        }
        if (target == NULL ||
            (a->target_len == target->len && memcmp(a->target, target->text, target->len) == 0)) {
            return 0; /* duplicate: collapses (RFC 5228 2.10.3) */
        }
    }
    if (type == SIEVE_ACTION_REDIRECT && run->redirects >= run->redirects_max) {
        return run_fail(run, -E2BIG, line, "too many redirects (limit %zu)", run->redirects_max);
    }
    if (actions->count >= run->actions_max) {
        return run_fail(run, -E2BIG, line, "too many actions (limit %zu)", run->actions_max);
    }
    struct sieve_action *a = &actions->items[actions->count++];
    *a = (struct sieve_action){.type = type,
                               .target = target != NULL ? target->text : NULL,
                               .target_len = target != NULL ? target->len : 0,
                               .line = line};
    if (type == SIEVE_ACTION_REDIRECT) {
        run->redirects++;
    }
    return 0;
}

static int
run_commands(struct run *run, const struct sieve_node *cmd)
{
    bool chain_taken = false; /* an if/elsif of the current chain ran its block */
    for (; cmd != NULL && !run->is_stopped; cmd = cmd->next) {
        int rc = step(run, cmd);
        if (rc < 0) {
            return rc;
        }
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
            if (chain_taken) {
                rc = run_commands(run, cmd->block);
                if (rc < 0) {
                    return rc;
                }
            }
            break;
        case SIEVE_CMD_ELSE:
            if (!chain_taken) {
                rc = run_commands(run, cmd->block);
                if (rc < 0) {
                    return rc;
                }
            }
            break;
        case SIEVE_CMD_STOP:
            run->is_stopped = true;
            break;
        case SIEVE_CMD_KEEP:
            if (sieve_node_tag(cmd, SIEVE_TAG_FLAGS) != NULL) {
                return run_fail(run, -ENOTSUP, cmd->line, "keep :flags is not supported yet");
            }
            rc = add_action(run, SIEVE_ACTION_KEEP, NULL, cmd->line);
            run->implicit_keep = false;
            break;
        case SIEVE_CMD_DISCARD:
            rc = add_action(run, SIEVE_ACTION_DISCARD, NULL, cmd->line);
            run->implicit_keep = false;
            break;
        case SIEVE_CMD_FILEINTO:
        case SIEVE_CMD_REDIRECT: {
            if (sieve_node_tag(cmd, SIEVE_TAG_FLAGS) != NULL ||
                sieve_node_tag(cmd, SIEVE_TAG_CREATE) != NULL) {
                return run_fail(run, -ENOTSUP, cmd->line,
                                "%s :flags/:create is not supported yet", cmd->name);
            }
            const struct sieve_arg *target = cmd->positional[0];
            assert(target != NULL && target->string_count >= 1);
            rc = add_action(run,
                            cmd->id == SIEVE_CMD_FILEINTO ? SIEVE_ACTION_FILEINTO
                                                          : SIEVE_ACTION_REDIRECT,
                            &target->strings[0], cmd->line);
            if (sieve_node_tag(cmd, SIEVE_TAG_COPY) == NULL) {
                run->implicit_keep = false; /* :copy (RFC 3894) keeps it */
            }
            break;
        }
        default:
            return run_fail(run, -ENOTSUP, cmd->line,
                            "command \"%s\" is not supported at run time yet", cmd->name);
        }
        if (rc < 0) {
            return rc;
        }
        if (cmd->id != SIEVE_CMD_IF && cmd->id != SIEVE_CMD_ELSIF) {
            if (cmd->id != SIEVE_CMD_ELSE) {
                chain_taken = false;
            }
        }
    }
    return 0;
}

static void
actions_fallback(struct sieve_actions *actions)
{
    /* RFC 5228 2.10.6: everything of this result is dropped, the implicit
     * keep alone remains (sieve_actions_finish() adds it). */
    sieve_arena_free(&actions->arena);
    sieve_arena_init(&actions->arena, SIEVE_RUN_ARENA_BYTES_MAX);
    actions->count = 0;
    actions->implicit_keep = true;
    actions->implicit_flags = NULL;
    actions->header = NULL;
    actions->header_len = 0;
    actions->duplicate_count = 0;
}

void
sieve_actions_init(struct sieve_actions *actions)
{
    assert(actions != NULL);
    memset(actions, 0, sizeof(*actions));
    sieve_arena_init(&actions->arena, SIEVE_RUN_ARENA_BYTES_MAX);
    actions->implicit_keep = true;
}

void
sieve_actions_finish(struct sieve_actions *actions)
{
    assert(actions != NULL);
    if (actions->is_finished) {
        return;
    }
    actions->is_finished = true;
    if (actions->implicit_keep) {
        assert(actions->count < SIEVE_RUN_ACTIONS_MAX + 1);
        actions->items[actions->count++] = (struct sieve_action){
            .type = SIEVE_ACTION_KEEP, .flags = actions->implicit_flags, .is_implicit = true};
    }
}

void
sieve_actions_free(struct sieve_actions *actions)
{
    assert(actions != NULL);
    sieve_arena_free(&actions->arena);
    memset(actions, 0, sizeof(*actions));
}

int
sieve_run(const struct sieve_script *script, const struct sieve_message *message,
          const struct sieve_env *env, const struct sieve_run_limits *limits,
          struct sieve_actions *actions, struct sieve_run_error *error_out)
{
    assert(script != NULL && message != NULL && actions != NULL && error_out != NULL);
    assert(!actions->is_finished);
    static const struct sieve_env env_none;
    error_out->line = 0;
    error_out->text[0] = '\0';
    struct run run = {
        .message = message,
        .env = env != NULL ? env : &env_none,
        .steps_max = SIEVE_RUN_STEPS_DEFAULT,
        .actions_max = SIEVE_RUN_ACTIONS_MAX,
        .redirects_max = SIEVE_RUN_REDIRECTS_DEFAULT,
        .work_max = SIEVE_RUN_MATCH_WORK_DEFAULT,
        .implicit_keep = actions->implicit_keep,
        .actions = actions,
        .error = error_out,
    };
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
    const char *h = message->header != NULL ? message->header : "";
    size_t len = message->header != NULL ? message->header_len : 0;
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
    run.header = h;
    run.header_len = len;
    run.scratch = malloc(len + 1);
    run.scratch_addr = malloc(len + 1);
    if (run.scratch == NULL || run.scratch_addr == NULL) {
        free(run.scratch);
        free(run.scratch_addr);
        actions_fallback(actions);
        return run_fail(&run, -ENOMEM, 0, "out of memory");
    }
    int rc = run_commands(&run, script->commands);
    free(run.scratch);
    free(run.scratch_addr);
    if (rc < 0) {
        actions_fallback(actions);
        return rc;
    }
    actions->implicit_keep = run.implicit_keep;
    return 0;
}
