/*
 * filters/spf_record.c - selecting and reading SPF records (RFC 7208
 * sections 4.5, 4.6, 5, 6 and the ABNF of section 12).
 *
 * Input is TXT record text from the network: every byte is checked, the
 * record is bounded by SPF_RECORD_BYTES_MAX, and nothing about it is
 * asserted. Terms are returned as views into that text; nothing is
 * allocated. Runs on worker threads.
 */
#define _GNU_SOURCE /* memrchr */
#include "filters/spf_record.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "filters/spf.h"
#include "filters/spf_macro.h"

#define IP6_TEXT_BYTES_MAX 64u

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
    return is_alpha(c) || is_digit(c);
}

static bool
name_is(const char *p, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(p, want, n) == 0;
}

bool
spf_record_is_spf(const char *text, size_t len)
{
    ASSERT(text != NULL || len == 0);
    return len >= 6 && strncasecmp(text, "v=spf1", 6) == 0 && (len == 6 || text[6] == ' ');
}

int
spf_record_select(const struct dns_answer *answer, const char **text_out, size_t *len_out)
{
    ASSERT(answer != NULL);
    if (answer->status != DNS_STATUS_OK) {
        return -ENOENT;
    }
    size_t found = 0;
    for (uint32_t i = 0; i < answer->count; i++) {
        const struct dns_record *r = &answer->records[i];
        if (spf_record_is_spf(r->txt.text, r->txt.len)) {
            if (found == 0) {
                *text_out = r->txt.text;
                *len_out = r->txt.len;
            }
            found++;
        }
    }
    if (found == 0) {
        return -ENOENT;
    }
    return found == 1 ? 0 : -EEXIST;
}

/* A CIDR length: "0" or a number without leading zero, at most max. */
static bool
parse_cidr(const char *p, size_t n, unsigned max, uint8_t *out)
{
    if (n == 0 || n > 3) {
        return false;
    }
    if (p[0] == '0' && n > 1) {
        return false;
    }
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            return false;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > max) {
        return false;
    }
    *out = (uint8_t)v;
    return true;
}

static bool
all_digits(const char *p, size_t n)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i])) {
            return false;
        }
    }
    return true;
}

/* RFC 7208 ip4-network: four qnums, no leading zeros. */
static bool
parse_ip4(const char *p, size_t n, uint8_t *out)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || p[i] != '.') {
                return false;
            }
            i++;
        }
        size_t start = i;
        while (i < n && is_digit(p[i]) && i - start < 4) {
            i++;
        }
        uint8_t v;
        if (!parse_cidr(p + start, i - start, 255, &v)) {
            return false;
        }
        out[part] = v;
    }
    return i == n;
}

static bool
parse_ip6(const char *p, size_t n, uint8_t *out)
{
    if (n == 0 || n >= IP6_TEXT_BYTES_MAX) {
        return false;
    }
    char buf[IP6_TEXT_BYTES_MAX];
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        return false;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

/* Remove a trailing dual-cidr-length ("/24", "//64", "/24//64") from
 * p[0..*n). Returns false when a CIDR is present but invalid. */
static bool
strip_dual_cidr(const char *p, size_t *n, uint8_t *cidr4, uint8_t *cidr6)
{
    ASSERT(p != NULL);
    size_t len = *n;
    const char *slash = len > 0 ? memrchr(p, '/', len) : NULL;
    if (slash == NULL) {
        return true;
    }
    size_t at = (size_t)(slash - p);
    if (!all_digits(slash + 1, len - at - 1)) {
        return true; /* not a CIDR length: left to the domain-spec check */
    }
    if (at > 0 && p[at - 1] == '/') {
        if (!parse_cidr(slash + 1, len - at - 1, 128, cidr6)) {
            return false;
        }
        len = at - 1;
        slash = len > 0 ? memrchr(p, '/', len) : NULL;
        if (slash == NULL) {
            *n = len;
            return true;
        }
        at = (size_t)(slash - p);
        if (!all_digits(slash + 1, len - at - 1)) {
            *n = len;
            return true;
        }
    }
    if (!parse_cidr(slash + 1, len - at - 1, 32, cidr4)) {
        return false;
    }
    *n = at;
    return true;
}

static bool
toplabel_is_valid(const char *p, size_t n)
{
    if (n == 0 || !is_alnum(p[0]) || !is_alnum(p[n - 1])) {
        return false;
    }
    bool has_alpha = false;
    bool has_dash = false;
    for (size_t i = 0; i < n; i++) {
        if (is_alpha(p[i])) {
            has_alpha = true;
        } else if (p[i] == '-') {
            has_dash = true;
        } else if (!is_digit(p[i])) {
            return false;
        }
    }
    return has_alpha || has_dash;
}

bool
spf_record_domain_spec_is_valid(const char *text, size_t len)
{
    if (len == 0) {
        return false;
    }
    bool ends_in_macro = false;
    if (spf_macro_check(text, len, SPF_MACRO_DOMAIN, &ends_in_macro) != 0) {
        return false;
    }
    if (ends_in_macro) {
        return true;
    }
    size_t n = len;
    if (text[n - 1] == '.') {
        n--;
    }
    const char *dot = n > 0 ? memrchr(text, '.', n) : NULL;
    if (dot == NULL) {
        return false; /* domain-end needs "." toplabel */
    }
    size_t at = (size_t)(dot - text);
    return toplabel_is_valid(dot + 1, n - at - 1);
}

void
spf_record_begin(struct spf_record_cursor *cursor, const char *text, size_t len)
{
    ASSERT(cursor != NULL);
    ASSERT(spf_record_is_spf(text, len));
    cursor->text = text;
    cursor->len = len;
    cursor->pos = 6;
}

static int
parse_modifier(const char *t, size_t n, size_t name_len, struct spf_term *term)
{
    const char *value = t + name_len + 1;
    size_t value_len = n - name_len - 1;
    if (name_is(t, name_len, "redirect") || name_is(t, name_len, "exp")) {
        term->kind = name_is(t, name_len, "redirect") ? SPF_TERM_REDIRECT : SPF_TERM_EXP;
        if (!spf_record_domain_spec_is_valid(value, value_len)) {
            return -EINVAL;
        }
        term->domain_spec = value;
        term->domain_spec_len = value_len;
        return 1;
    }
    term->kind = SPF_TERM_UNKNOWN_MODIFIER;
    /* unknown-modifier = name "=" macro-string: it must still be valid. */
    if (spf_macro_check(value, value_len, SPF_MACRO_DOMAIN, NULL) != 0) {
        return -EINVAL;
    }
    return 1;
}

static int
parse_mechanism(const char *t, size_t n, struct spf_term *term)
{
    size_t i = 0;
    if (t[0] == '+' || t[0] == '-' || t[0] == '~' || t[0] == '?') {
        term->qualifier = t[0];
        i = 1;
    }
    size_t name_start = i;
    while (i < n && is_alnum(t[i])) {
        i++;
    }
    const char *name = t + name_start;
    size_t name_len = i - name_start;
    const char *rest = t + i;
    size_t rest_len = n - i;
    if (name_is(name, name_len, "all")) {
        term->kind = SPF_TERM_ALL;
        return rest_len == 0 ? 1 : -EINVAL;
    }
    if (name_is(name, name_len, "include") || name_is(name, name_len, "exists")) {
        term->kind = name_is(name, name_len, "include") ? SPF_TERM_INCLUDE : SPF_TERM_EXISTS;
        if (rest_len < 2 || rest[0] != ':' ||
            !spf_record_domain_spec_is_valid(rest + 1, rest_len - 1)) {
            return -EINVAL;
        }
        term->domain_spec = rest + 1;
        term->domain_spec_len = rest_len - 1;
        return 1;
    }
    if (name_is(name, name_len, "ptr")) {
        term->kind = SPF_TERM_PTR;
        if (rest_len == 0) {
            return 1;
        }
        if (rest[0] != ':' || !spf_record_domain_spec_is_valid(rest + 1, rest_len - 1)) {
            return -EINVAL;
        }
        term->domain_spec = rest + 1;
        term->domain_spec_len = rest_len - 1;
        return 1;
    }
    if (name_is(name, name_len, "a") || name_is(name, name_len, "mx")) {
        term->kind = name_is(name, name_len, "a") ? SPF_TERM_A : SPF_TERM_MX;
        size_t len = rest_len;
        if (!strip_dual_cidr(rest, &len, &term->cidr4, &term->cidr6)) {
            return -EINVAL;
        }
        if (len == 0) {
            return 1;
        }
        if (rest[0] != ':' || !spf_record_domain_spec_is_valid(rest + 1, len - 1)) {
            return -EINVAL;
        }
        term->domain_spec = rest + 1;
        term->domain_spec_len = len - 1;
        return 1;
    }
    if (name_is(name, name_len, "ip4") || name_is(name, name_len, "ip6")) {
        bool is_v6 = name_is(name, name_len, "ip6");
        term->kind = is_v6 ? SPF_TERM_IP6 : SPF_TERM_IP4;
        if (rest_len < 2 || rest[0] != ':') {
            return -EINVAL;
        }
        const char *net = rest + 1;
        size_t net_len = rest_len - 1;
        const char *slash = memchr(net, '/', net_len);
        if (slash != NULL) {
            size_t at = (size_t)(slash - net);
            uint8_t *cidr = is_v6 ? &term->cidr6 : &term->cidr4;
            if (!parse_cidr(slash + 1, net_len - at - 1, is_v6 ? 128 : 32, cidr)) {
                return -EINVAL;
            }
            net_len = at;
        }
        bool is_ok =
            is_v6 ? parse_ip6(net, net_len, term->network) : parse_ip4(net, net_len, term->network);
        return is_ok ? 1 : -EINVAL;
    }
    return -EINVAL; /* unknown mechanism */
}

int
spf_record_next(struct spf_record_cursor *cursor, struct spf_term *term_out)
{
    ASSERT(cursor != NULL);
    ASSERT(term_out != NULL);
    while (cursor->pos < cursor->len && cursor->text[cursor->pos] == ' ') {
        cursor->pos++;
    }
    if (cursor->pos >= cursor->len) {
        return 0;
    }
    const char *t = cursor->text + cursor->pos;
    const char *sp = memchr(t, ' ', cursor->len - cursor->pos);
    size_t n = sp != NULL ? (size_t)(sp - t) : cursor->len - cursor->pos;
    memset(term_out, 0, sizeof(*term_out));
    term_out->qualifier = '+';
    term_out->cidr4 = 32;
    term_out->cidr6 = 128;
    term_out->text = t;
    term_out->text_len = n;
    /* name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) then "=": a modifier. */
    size_t j = 0;
    if (is_alpha(t[0])) {
        j = 1;
        while (j < n && (is_alnum(t[j]) || t[j] == '-' || t[j] == '_' || t[j] == '.')) {
            j++;
        }
    }
    int rc;
    if (j > 0 && j < n && t[j] == '=') {
        rc = parse_modifier(t, n, j, term_out);
    } else {
        rc = parse_mechanism(t, n, term_out);
    }
    if (rc < 0) {
        return rc; /* pos stays at the bad term */
    }
    cursor->pos += n;
    return 1;
}

int
spf_record_check(const char *text, size_t len, struct spf_record_summary *summary_out)
{
    ASSERT(summary_out != NULL);
    memset(summary_out, 0, sizeof(*summary_out));
    summary_out->redirect_index = SIZE_MAX;
    summary_out->exp_index = SIZE_MAX;
    if (len > SPF_RECORD_BYTES_MAX) {
        return -E2BIG;
    }
    struct spf_record_cursor cursor;
    spf_record_begin(&cursor, text, len);
    struct spf_term term;
    for (;;) {
        int rc = spf_record_next(&cursor, &term);
        if (rc < 0) {
            summary_out->error_pos = cursor.pos;
            return rc;
        }
        if (rc == 0) {
            break;
        }
        size_t index = summary_out->term_count++;
        if (term.kind == SPF_TERM_ALL) {
            summary_out->has_all = true;
        } else if (term.kind == SPF_TERM_REDIRECT) {
            if (summary_out->redirect_index != SIZE_MAX) {
                summary_out->error_pos = (size_t)(term.text - text);
                return -EINVAL; /* RFC 7208 6: at most once */
            }
            summary_out->redirect_index = index;
        } else if (term.kind == SPF_TERM_EXP) {
            if (summary_out->exp_index != SIZE_MAX) {
                summary_out->error_pos = (size_t)(term.text - text);
                return -EINVAL;
            }
            summary_out->exp_index = index;
        }
    }
    return 0;
}
