/*
 * filters/auth_results.c - formatting the Authentication-Results field
 * (RFC 8601) and recognising our own.
 *
 * Pure functions over the caller's buffers; runs on worker threads.
 * Strings from messages and DNS (DKIM d=, s=, b=, reasons, domains) are
 * bounded by AUTH_RESULTS_VALUE_BYTES_MAX and made safe for a header:
 * no CR, LF or other control bytes, and quoting or replacement where the
 * ABNF would otherwise be broken.
 */
#include "filters/auth_results.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"

#define COMMENT_DEPTH_MAX 32u

struct writer {
    char *buf;
    size_t cap; /* without the NUL */
    size_t used;
    size_t line_len;
    bool is_full;
};

static void
put(struct writer *w, const char *p, size_t n)
{
    if (w->used + n > w->cap) {
        w->is_full = true;
        return;
    }
    memcpy(w->buf + w->used, p, n);
    w->used += n;
    for (size_t i = 0; i < n; i++) {
        w->line_len = p[i] == '\n' ? 0 : w->line_len + 1;
    }
}

static void
puts_w(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* RFC 2045 token characters. */
static bool
is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* value as a token when it is one, else as a quoted-string; control and
 * 8-bit bytes become '?'. At most AUTH_RESULTS_VALUE_BYTES_MAX octets
 * of value are used. */
static size_t
format_value(const char *value, size_t max_len, char *out, size_t out_bytes)
{
    ASSERT(out_bytes >= 2 * AUTH_RESULTS_VALUE_BYTES_MAX + 3);
    size_t n = strnlen(value, max_len);
    bool is_token = n > 0;
    for (size_t i = 0; i < n && is_token; i++) {
        is_token = is_token_char((unsigned char)value[i]);
    }
    size_t k = 0;
    if (is_token) {
        memcpy(out, value, n);
        return n;
    }
    out[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c < 0x20 || c >= 0x7f) {
            c = '?';
        }
        if (c == '"' || c == '\\') {
            out[k++] = '\\';
        }
        out[k++] = (char)c;
    }
    out[k++] = '"';
    return k;
}

size_t
auth_results_comment_sanitize(const char *text, char *out, size_t out_bytes)
{
    ASSERT(out != NULL);
    ASSERT(out_bytes > 0);
    size_t k = 0;
    for (size_t i = 0; text != NULL && text[i] != '\0' && k + 1 < out_bytes; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c >= 0x7f) {
            continue;
        }
        if (c == '(') {
            c = '[';
        } else if (c == ')') {
            c = ']';
        } else if (c == '\\') {
            c = '/';
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return k;
}

/* " name=value", folded first when the line would pass the soft limit. */
static void
put_property(struct writer *w, const char *name, const char *value, size_t max_len)
{
    if (value == NULL || value[0] == '\0') {
        return;
    }
    char v[2 * AUTH_RESULTS_VALUE_BYTES_MAX + 3];
    size_t vn = format_value(value, max_len, v, sizeof(v));
    size_t need = 1 + strlen(name) + 1 + vn;
    puts_w(w, w->line_len + need > AUTH_RESULTS_LINE_BYTES_SOFT ? "\r\n\t" : " ");
    puts_w(w, name);
    put(w, "=", 1);
    put(w, v, vn);
}

static void
put_comment(struct writer *w, const char *text)
{
    char c[AUTH_RESULTS_VALUE_BYTES_MAX + 1];
    size_t n = auth_results_comment_sanitize(text, c, sizeof(c));
    if (n == 0) {
        return;
    }
    puts_w(w, w->line_len + n + 3 > AUTH_RESULTS_LINE_BYTES_SOFT ? "\r\n\t(" : " (");
    put(w, c, n);
    put(w, ")", 1);
}

/* Start a resinfo: ";" then a new folded line. */
static void
begin_result(struct writer *w, const char *method, const char *result)
{
    puts_w(w, ";\r\n\t");
    puts_w(w, method);
    put(w, "=", 1);
    puts_w(w, result);
}

const char *
auth_results_dkim_result_name(enum auth_results_dkim_result result)
{
    switch (result) {
    case AUTH_RESULTS_DKIM_NONE:
        return "none";
    case AUTH_RESULTS_DKIM_PASS:
        return "pass";
    case AUTH_RESULTS_DKIM_FAIL:
        return "fail";
    case AUTH_RESULTS_DKIM_POLICY:
        return "policy";
    case AUTH_RESULTS_DKIM_NEUTRAL:
        return "neutral";
    case AUTH_RESULTS_DKIM_TEMPERROR:
        return "temperror";
    case AUTH_RESULTS_DKIM_PERMERROR:
        return "permerror";
    }
    ASSERT(!"unknown dkim result");
    return "permerror";
}

int
auth_results_format(const struct auth_results_input *input, char *out, size_t out_bytes)
{
    ASSERT(input != NULL);
    ASSERT(out != NULL);
    ASSERT(out_bytes > 0);
    out[0] = '\0';
    if (input->authserv_id == NULL || input->authserv_id[0] == '\0') {
        return -EINVAL;
    }
    struct writer w = {.buf = out, .cap = out_bytes - 1};
    puts_w(&w, "Authentication-Results: ");
    char v[2 * AUTH_RESULTS_VALUE_BYTES_MAX + 3];
    size_t vn = format_value(input->authserv_id, AUTH_RESULTS_VALUE_BYTES_MAX, v, sizeof(v));
    put(&w, v, vn);
    size_t dkim_count =
        input->dkim_count < AUTH_RESULTS_DKIM_MAX ? input->dkim_count : AUTH_RESULTS_DKIM_MAX;
    bool has_any = false;
    for (size_t i = 0; i < dkim_count; i++) {
        const struct auth_results_dkim *d = &input->dkim[i];
        begin_result(&w, "dkim", auth_results_dkim_result_name(d->result));
        put_comment(&w, d->reason);
        put_property(&w, "header.d", d->domain, AUTH_RESULTS_VALUE_BYTES_MAX);
        put_property(&w, "header.s", d->selector, AUTH_RESULTS_VALUE_BYTES_MAX);
        put_property(&w, "header.a", d->algorithm, AUTH_RESULTS_VALUE_BYTES_MAX);
        put_property(&w, "header.b", d->b, AUTH_RESULTS_B_PREFIX_BYTES);
        has_any = true;
    }
    if (input->spf != NULL) {
        const struct spf_outcome *s = input->spf;
        begin_result(&w, "spf", spf_result_name(s->result));
        bool is_helo = s->identity == SPF_IDENTITY_HELO || s->is_null_sender;
        put_property(&w, is_helo ? "smtp.helo" : "smtp.mailfrom", s->domain,
                     AUTH_RESULTS_VALUE_BYTES_MAX);
        has_any = true;
    }
    if (input->dmarc != NULL) {
        const struct dmarc_outcome *d = input->dmarc;
        begin_result(&w, "dmarc", dmarc_result_name(d->result));
        if (d->has_record) {
            char comment[64];
            size_t n = 0;
            const char *parts[] = {"p=", dmarc_policy_name(d->policy),
                                   " dis=", dmarc_policy_name(d->disposition)};
            for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
                size_t len = strlen(parts[i]);
                ASSERT(n + len < sizeof(comment));
                memcpy(comment + n, parts[i], len);
                n += len;
            }
            comment[n] = '\0';
            put_comment(&w, comment);
        }
        put_property(&w, "header.from", d->from_domain, AUTH_RESULTS_VALUE_BYTES_MAX);
        has_any = true;
    }
    if (!has_any) {
        puts_w(&w, "; none");
    }
    puts_w(&w, "\r\n");
    if (w.is_full) {
        out[0] = '\0';
        return -ENOSPC;
    }
    out[w.used] = '\0';
    return (int)w.used;
}

/* Skip white space, folding and comments; false for an unclosed comment. */
static bool
skip_cfws(const char *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    for (;;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
            i++;
        }
        if (i >= len || s[i] != '(') {
            break;
        }
        unsigned depth = 0;
        while (i < len) {
            if (s[i] == '\\' && i + 1 < len) {
                i += 2;
                continue;
            }
            if (s[i] == '(') {
                if (++depth > COMMENT_DEPTH_MAX) {
                    return false;
                }
            } else if (s[i] == ')') {
                depth--;
                if (depth == 0) {
                    i++;
                    break;
                }
            }
            i++;
        }
        if (depth != 0) {
            return false;
        }
    }
    *pos = i;
    return true;
}

bool
auth_results_header_is_ours(const char *value, size_t len, const char *authserv_id)
{
    ASSERT(value != NULL || len == 0);
    ASSERT(authserv_id != NULL);
    size_t pos = 0;
    if (!skip_cfws(value, len, &pos) || pos >= len) {
        return false;
    }
    char id[AUTH_RESULTS_VALUE_BYTES_MAX + 1];
    size_t n = 0;
    if (value[pos] == '"') {
        pos++;
        while (pos < len && value[pos] != '"') {
            char c = value[pos];
            if (c == '\\' && pos + 1 < len) {
                c = value[++pos];
            }
            if (n == AUTH_RESULTS_VALUE_BYTES_MAX) {
                return false;
            }
            id[n++] = c;
            pos++;
        }
        if (pos >= len) {
            return false;
        }
    } else {
        while (pos < len && is_token_char((unsigned char)value[pos])) {
            if (n == AUTH_RESULTS_VALUE_BYTES_MAX) {
                return false;
            }
            id[n++] = value[pos++];
        }
        /* A token must end at CFWS, ';' or the end: "a.example;" yes, "a.example@x" no. */
        if (pos < len && value[pos] != ';' && value[pos] != ' ' && value[pos] != '\t' &&
            value[pos] != '\r' && value[pos] != '\n' && value[pos] != '(') {
            return false;
        }
    }
    id[n] = '\0';
    return n > 0 && strlen(authserv_id) == n && strncasecmp(id, authserv_id, n) == 0;
}
