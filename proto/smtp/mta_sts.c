/*
 * proto/smtp/mta_sts.c - the MTA-STS TXT record, the policy file and MX
 * matching (see mta_sts.h): line and field scanners over the caller's
 * bytes, strict where RFC 8461 is (the version, the mode, max_age's
 * range, name syntax) and lenient where it asks to be (unknown fields,
 * LF or CRLF, blanks around values).
 */
#include "proto/smtp/mta_sts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool
equal_nocase(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len) {
        return false;
    }
    for (size_t i = 0; i < a_len; i++) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

/* ---- the TXT record ---- */

int
mta_sts_txt_parse(const char *text, size_t len, char id_out[MTA_STS_ID_BYTES])
{
    id_out[0] = '\0';
    /* "v=STSv1" first, then ";" *WSP fields (section 3.1). */
    static const char version[] = "v=STSv1";
    if (len < sizeof(version) - 1 || memcmp(text, version, sizeof(version) - 1) != 0) {
        return -EINVAL;
    }
    size_t i = sizeof(version) - 1;
    bool has_id = false;
    while (i < len) {
        while (i < len && is_wsp(text[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        if (text[i] != ';') {
            return -EINVAL;
        }
        i++;
        while (i < len && is_wsp(text[i])) {
            i++;
        }
        size_t name = i;
        while (i < len && text[i] != '=' && text[i] != ';') {
            i++;
        }
        if (i == len || text[i] != '=') {
            if (i == name) {
                continue; /* a trailing ";" */
            }
            return -EINVAL;
        }
        size_t name_len = i - name;
        i++;
        size_t value = i;
        while (i < len && text[i] != ';' && !is_wsp(text[i])) {
            i++;
        }
        size_t value_len = i - value;
        if (name_len == 2 && memcmp(text + name, "id", 2) == 0) {
            if (has_id || value_len == 0 || value_len >= MTA_STS_ID_BYTES) {
                return -EINVAL;
            }
            for (size_t k = 0; k < value_len; k++) {
                if (!is_alnum(text[value + k])) {
                    return -EINVAL;
                }
            }
            memcpy(id_out, text + value, value_len);
            id_out[value_len] = '\0';
            has_id = true;
        }
    }
    return has_id ? 0 : -EINVAL;
}

/* ---- the policy file ---- */

static int
policy_error(char *err, size_t err_bytes, int rc, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int
policy_error(char *err, size_t err_bytes, int rc, size_t line, const char *fmt, ...)
{
    if (err_bytes > 0) {
        int n = line > 0 ? snprintf(err, err_bytes, "line %zu: ", line) : 0;
        if (n >= 0 && (size_t)n < err_bytes) {
            va_list ap;
            va_start(ap, fmt);
            (void)vsnprintf(err + n, err_bytes - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

/* A domain name as an mx value may hold it: letters, digits, '-', '.',
 * and a leading "*." (section 3.2: "mx" values are domain names or
 * wildcards of one label). */
static bool
mx_pattern_valid(const char *value, size_t len)
{
    if (len == 0 || len >= MTA_STS_NAME_BYTES) {
        return false;
    }
    size_t i = 0;
    if (len >= 2 && value[0] == '*' && value[1] == '.') {
        i = 2;
    }
    size_t label = 0;
    for (; i < len; i++) {
        char c = value[i];
        if (c == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if (is_alnum(c) || c == '-' || c == '_') {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return label > 0;
}

int
mta_sts_policy_parse(const char *text, size_t len, struct mta_sts_policy *policy_out,
                     char *err, size_t err_bytes)
{
    memset(policy_out, 0, sizeof(*policy_out));
    if (err_bytes > 0) {
        err[0] = '\0';
    }
    if (len > MTA_STS_POLICY_BYTES_MAX) {
        return policy_error(err, err_bytes, -E2BIG, 0, "policy over %u bytes",
                            MTA_STS_POLICY_BYTES_MAX);
    }
    bool has_version = false;
    bool has_mode = false;
    bool has_max_age = false;
    size_t line_number = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && text[i] != '\n') {
            i++;
        }
        size_t end = i;
        if (i < len) {
            i++; /* the LF */
        }
        if (end > start && text[end - 1] == '\r') {
            end--;
        }
        line_number++;
        while (start < end && is_wsp(text[start])) {
            start++;
        }
        while (end > start && is_wsp(text[end - 1])) {
            end--;
        }
        if (start == end) {
            continue; /* an empty line: a final line end, or blank lines */
        }
        size_t colon = start;
        while (colon < end && text[colon] != ':') {
            colon++;
        }
        if (colon == end || colon == start) {
            return policy_error(err, err_bytes, -EINVAL, line_number, "not a \"name: value\" line");
        }
        size_t name_len = colon - start;
        while (name_len > 0 && is_wsp(text[start + name_len - 1])) {
            name_len--;
        }
        const char *name = text + start;
        size_t value_at = colon + 1;
        while (value_at < end && is_wsp(text[value_at])) {
            value_at++;
        }
        const char *value = text + value_at;
        size_t value_len = end - value_at;
        if (equal_nocase(name, name_len, "version")) {
            if (has_version) {
                return policy_error(err, err_bytes, -EINVAL, line_number, "version given twice");
            }
            if (value_len != 5 || memcmp(value, "STSv1", 5) != 0) {
                return policy_error(err, err_bytes, -EINVAL, line_number,
                                    "version is not STSv1");
            }
            has_version = true;
        } else if (equal_nocase(name, name_len, "mode")) {
            if (has_mode) {
                return policy_error(err, err_bytes, -EINVAL, line_number, "mode given twice");
            }
            if (value_len == 7 && memcmp(value, "enforce", 7) == 0) {
                policy_out->mode = MTA_STS_MODE_ENFORCE;
            } else if (value_len == 7 && memcmp(value, "testing", 7) == 0) {
                policy_out->mode = MTA_STS_MODE_TESTING;
            } else if (value_len == 4 && memcmp(value, "none", 4) == 0) {
                policy_out->mode = MTA_STS_MODE_NONE;
            } else {
                return policy_error(err, err_bytes, -EINVAL, line_number,
                                    "mode is not enforce, testing or none");
            }
            has_mode = true;
        } else if (equal_nocase(name, name_len, "max_age")) {
            if (has_max_age) {
                return policy_error(err, err_bytes, -EINVAL, line_number, "max_age given twice");
            }
            uint64_t seconds = 0;
            if (value_len == 0 || value_len > 10) {
                return policy_error(err, err_bytes, -EINVAL, line_number,
                                    "max_age is not a number of seconds");
            }
            for (size_t k = 0; k < value_len; k++) {
                if (value[k] < '0' || value[k] > '9') {
                    return policy_error(err, err_bytes, -EINVAL, line_number,
                                        "max_age is not a number of seconds");
                }
                seconds = seconds * 10 + (uint64_t)(value[k] - '0');
            }
            if (seconds > MTA_STS_MAX_AGE_MAX) {
                return policy_error(err, err_bytes, -EINVAL, line_number,
                                    "max_age over %u seconds", MTA_STS_MAX_AGE_MAX);
            }
            policy_out->max_age = (uint32_t)seconds;
            has_max_age = true;
        } else if (equal_nocase(name, name_len, "mx")) {
            if (!mx_pattern_valid(value, value_len)) {
                return policy_error(err, err_bytes, -EINVAL, line_number,
                                    "mx is not a host name or \"*.\" pattern");
            }
            if (policy_out->mx_count == MTA_STS_MX_MAX) {
                return policy_error(err, err_bytes, -E2BIG, line_number, "more than %u mx",
                                    MTA_STS_MX_MAX);
            }
            char *out = policy_out->mx[policy_out->mx_count++];
            for (size_t k = 0; k < value_len; k++) {
                out[k] = lower(value[k]);
            }
            out[value_len] = '\0';
        }
        /* Any other field: ignored (section 3.2). */
    }
    if (!has_version || !has_mode || !has_max_age) {
        return policy_error(err, err_bytes, -EINVAL, 0, "policy without %s",
                            !has_version ? "version" : !has_mode ? "mode" : "max_age");
    }
    if (policy_out->mode != MTA_STS_MODE_NONE && policy_out->mx_count == 0) {
        return policy_error(err, err_bytes, -EINVAL, 0, "policy without mx");
    }
    return 0;
}

/* ---- MX matching ---- */

bool
mta_sts_mx_matches(const struct mta_sts_policy *policy, const char *host)
{
    size_t len = strlen(host);
    if (len > 0 && host[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len >= MTA_STS_NAME_BYTES) {
        return false;
    }
    for (size_t p = 0; p < policy->mx_count; p++) {
        const char *pattern = policy->mx[p];
        if (pattern[0] == '*' && pattern[1] == '.') {
            /* "*.example.com": one label, then ".example.com" exactly. */
            const char *suffix = pattern + 1; /* ".example.com" */
            size_t suffix_len = strlen(suffix);
            if (len <= suffix_len) {
                continue;
            }
            size_t label_len = len - suffix_len;
            if (memchr(host, '.', label_len) != NULL) {
                continue; /* more than one label on the left */
            }
            if (equal_nocase(host + label_len, suffix_len, suffix)) {
                return true;
            }
        } else if (equal_nocase(host, len, pattern)) {
            return true;
        }
    }
    return false;
}
