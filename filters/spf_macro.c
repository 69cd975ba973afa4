/*
 * filters/spf_macro.c - SPF macro-string check and expansion (RFC 7208
 * section 7).
 *
 * Reads text from TXT records (peer data): every byte is checked against
 * the ABNF, nothing is asserted about it. One walker serves both the
 * syntax check (no context, no output) and the expansion. Runs on worker
 * threads; no allocation, stack buffers only.
 * Limits: SPF_MACRO_PARTS_MAX parts per value, transformer digits clamped
 * to 999, output bounded by the caller's buffer (-ENOSPC beyond).
 */
#include "filters/spf_macro.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define VALUE_BYTES_MAX 1024u /* any one letter's value (sender, names, addresses) */

struct writer {
    char *buf;  /* NULL: check only */
    size_t cap; /* bytes usable, without the NUL */
    size_t used;
    bool is_full;
};

static void
put(struct writer *w, const char *p, size_t n)
{
    if (w->buf == NULL) {
        return;
    }
    if (w->used + n > w->cap) {
        w->is_full = true;
        return;
    }
    memcpy(w->buf + w->used, p, n);
    w->used += n;
}

static bool
is_delimiter(char c)
{
    return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* The value of one macro letter (lower case) into buf. */
static int
letter_value(char letter, const struct spf_macro_context *ctx, char *buf, size_t buf_bytes)
{
    const char *s = NULL;
    switch (letter) {
    case 's':
        s = ctx->sender;
        break;
    case 'l':
        s = ctx->local_part;
        break;
    case 'o':
        s = ctx->sender_domain;
        break;
    case 'd':
        s = ctx->domain;
        break;
    case 'h':
        s = ctx->helo;
        break;
    case 'r':
        s = ctx->receiver != NULL ? ctx->receiver : "unknown";
        break;
    case 'p':
        if (ctx->ptr_name == NULL) {
            return -EAGAIN;
        }
        s = ctx->ptr_name;
        break;
    case 'v':
        s = ctx->ip.is_v6 ? "ip6" : "in-addr";
        break;
    case 't': {
        int n = snprintf(buf, buf_bytes, "%" PRId64, ctx->now_s);
        ASSERT(n > 0 && (size_t)n < buf_bytes);
        return 0;
    }
    case 'c':
        if (inet_ntop(ctx->ip.is_v6 ? AF_INET6 : AF_INET, ctx->ip.bytes, buf,
                      (socklen_t)buf_bytes) == NULL) {
            return -ENOSPC;
        }
        return 0;
    case 'i':
        if (ctx->ip.is_v6) {
            /* RFC 7208 7.3: dot-separated nibbles, lower-case hex. */
            static const char hex[] = "0123456789abcdef";
            ASSERT(buf_bytes >= 64);
            size_t k = 0;
            for (size_t b = 0; b < 16; b++) {
                buf[k++] = hex[ctx->ip.bytes[b] >> 4];
                buf[k++] = '.';
                buf[k++] = hex[ctx->ip.bytes[b] & 0xf];
                buf[k++] = b == 15 ? '\0' : '.';
            }
            return 0;
        }
        (void)snprintf(buf, buf_bytes, "%u.%u.%u.%u", ctx->ip.bytes[0], ctx->ip.bytes[1],
                       ctx->ip.bytes[2], ctx->ip.bytes[3]);
        return 0;
    default:
        ASSERT(!"letter checked by the caller");
    }
    if (s == NULL) {
        s = "";
    }
    size_t n = strlen(s);
    if (n + 1 > buf_bytes) {
        return -ENOSPC;
    }
    memcpy(buf, s, n + 1);
    return 0;
}

/* Split, reverse, keep the rightmost digits parts, join with '.', escape. */
static int
transform(const char *value, unsigned digits, bool is_reversed, const char *delims,
          size_t delim_count, bool is_escaped, struct writer *w)
{
    uint16_t starts[SPF_MACRO_PARTS_MAX];
    uint16_t lens[SPF_MACRO_PARTS_MAX];
    size_t count = 0;
    size_t n = strlen(value);
    ASSERT(n <= VALUE_BYTES_MAX);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        bool is_split = i == n;
        if (!is_split) {
            if (delim_count == 0) {
                is_split = value[i] == '.';
            } else {
                is_split = memchr(delims, value[i], delim_count) != NULL;
            }
        }
        if (is_split) {
            if (count == SPF_MACRO_PARTS_MAX) {
                return -ENOSPC;
            }
            starts[count] = (uint16_t)start;
            lens[count] = (uint16_t)(i - start);
            count++;
            start = i + 1;
        }
    }
    size_t first = 0;
    if (digits != 0 && digits < count) {
        first = count - digits;
    }
    bool is_first_out = true;
    for (size_t k = first; k < count; k++) {
        size_t idx = is_reversed ? count - 1 - k : k;
        if (!is_first_out) {
            put(w, ".", 1);
        }
        is_first_out = false;
        const char *p = value + starts[idx];
        size_t len = lens[idx];
        if (!is_escaped) {
            put(w, p, len);
            continue;
        }
        for (size_t j = 0; j < len; j++) {
            unsigned char c = (unsigned char)p[j];
            if (is_unreserved(c)) {
                put(w, (const char *)&p[j], 1);
            } else {
                char esc[4];
                (void)snprintf(esc, sizeof(esc), "%%%02X", c);
                put(w, esc, 3);
            }
        }
    }
    return 0;
}

static int
walk(const char *text, size_t len, enum spf_macro_mode mode, const struct spf_macro_context *ctx,
     struct writer *w, bool *ends_in_macro_out)
{
    bool ends_in_macro = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c != '%') {
            bool is_ok = (c >= 0x21 && c <= 0x7e) || (c == ' ' && mode == SPF_MACRO_EXPLAIN);
            if (!is_ok) {
                return -EINVAL;
            }
            put(w, (const char *)&text[i], 1);
            ends_in_macro = false;
            i++;
            continue;
        }
        if (i + 1 >= len) {
            return -EINVAL;
        }
        char next = text[i + 1];
        ends_in_macro = true;
        if (next == '%') {
            put(w, "%", 1);
            i += 2;
            continue;
        }
        if (next == '_') {
            put(w, " ", 1);
            i += 2;
            continue;
        }
        if (next == '-') {
            put(w, "%20", 3);
            i += 2;
            continue;
        }
        if (next != '{') {
            return -EINVAL;
        }
        i += 2;
        if (i >= len) {
            return -EINVAL;
        }
        char raw_letter = text[i++];
        char letter = (char)ascii_lower((unsigned char)raw_letter);
        if (strchr("slodiphcrtv", letter) == NULL || letter == '\0') {
            return -EINVAL;
        }
        if ((letter == 'c' || letter == 'r' || letter == 't') && mode != SPF_MACRO_EXPLAIN) {
            return -EINVAL;
        }
        bool is_escaped = raw_letter >= 'A' && raw_letter <= 'Z';
        unsigned digits = 0;
        size_t digit_count = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9') {
            if (digit_count < SPF_MACRO_DIGITS_MAX) {
                digits = digits * 10 + (unsigned)(text[i] - '0');
            } else {
                digits = 999; /* more parts than any value has */
            }
            digit_count++;
            i++;
        }
        if (digit_count > 0 && digits == 0) {
            return -EINVAL; /* RFC 7208 7.1: the DIGIT transformer must be nonzero */
        }
        bool is_reversed = false;
        if (i < len && (text[i] == 'r' || text[i] == 'R')) {
            is_reversed = true;
            i++;
        }
        const char *delims = text + i;
        size_t delim_count = 0;
        while (i < len && is_delimiter(text[i])) {
            delim_count++;
            i++;
        }
        if (i >= len || text[i] != '}') {
            return -EINVAL;
        }
        i++;
        if (ctx == NULL) {
            continue;
        }
        char value[VALUE_BYTES_MAX + 1];
        int rc = letter_value(letter, ctx, value, sizeof(value));
        if (rc != 0) {
            return rc;
        }
        rc = transform(value, digits, is_reversed, delims, delim_count, is_escaped, w);
        if (rc != 0) {
            return rc;
        }
    }
    if (ends_in_macro_out != NULL) {
        *ends_in_macro_out = ends_in_macro;
    }
    return 0;
}

int
spf_macro_check(const char *text, size_t len, enum spf_macro_mode mode, bool *ends_in_macro_out)
{
    ASSERT(text != NULL || len == 0);
    struct writer w = {0};
    return walk(text, len, mode, NULL, &w, ends_in_macro_out);
}

int
spf_macro_expand(const char *text, size_t len, enum spf_macro_mode mode,
                 const struct spf_macro_context *ctx, char *out, size_t out_bytes,
                 size_t *out_len_out)
{
    ASSERT(text != NULL || len == 0);
    ASSERT(ctx != NULL);
    ASSERT(out != NULL);
    ASSERT(out_bytes >= 1);
    struct writer w = {.buf = out, .cap = out_bytes - 1};
    int rc = walk(text, len, mode, ctx, &w, NULL);
    if (rc == 0 && w.is_full) {
        rc = -ENOSPC;
    }
    out[rc == 0 ? w.used : 0] = '\0';
    if (out_len_out != NULL) {
        *out_len_out = rc == 0 ? w.used : 0;
    }
    return rc;
}

bool
spf_macro_uses_ptr(const char *text, size_t len)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (text[i] == '%' && text[i + 1] == '%') {
            i++; /* an escaped percent sign, not a macro */
            continue;
        }
        if (text[i] == '%' && text[i + 1] == '{' &&
            ascii_lower((unsigned char)text[i + 2]) == 'p') {
            return true;
        }
    }
    return false;
}
