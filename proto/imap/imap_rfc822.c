/*
 * proto/imap/imap_rfc822.c - RFC 5322 / RFC 2045 lexical helpers.
 *
 * Pure functions over borrowed bytes; no allocation, any thread. Every loop
 * advances its index each round, so work is linear in the input; comment
 * nesting is a counter, not recursion.
 */
#include "proto/imap/imap_rfc822.h"

#include <string.h>

#include "core/assertions.h"

static bool is_wsp(char c);
static void produce_quoted(const char *s, size_t len, struct imap_quote_sink *sink);
static void produce_words(const char *s, size_t len, bool is_phrase,
                          struct imap_quote_sink *sink);

bool
imap_rfc822_header_next(const char *hdr, size_t len, size_t *pos,
                        struct imap_rfc822_field *field_out)
{
    size_t p = *pos;
    while (p < len) {
        const char *lf = memchr(hdr + p, '\n', len - p);
        size_t line_end = lf == NULL ? len : (size_t)(lf - hdr);
        size_t next = lf == NULL ? len : line_end + 1;
        size_t content_end = line_end;
        if (content_end > p && hdr[content_end - 1] == '\r') {
            content_end--;
        }
        if (content_end == p) {
            *pos = len; /* the empty line ends the header */
            return false;
        }
        const char *colon = is_wsp(hdr[p]) ? NULL : memchr(hdr + p, ':', content_end - p);
        if (colon == NULL) {
            p = next; /* a stray continuation or a line without a colon */
            continue;
        }
        size_t name_end = (size_t)(colon - hdr);
        while (name_end > p && is_wsp(hdr[name_end - 1])) {
            name_end--;
        }
        /* The field runs over continuation lines (starting with WSP). */
        size_t field_end = content_end;
        while (next < len && is_wsp(hdr[next])) {
            lf = memchr(hdr + next, '\n', len - next);
            line_end = lf == NULL ? len : (size_t)(lf - hdr);
            field_end = line_end;
            if (field_end > next && hdr[field_end - 1] == '\r') {
                field_end--;
            }
            next = lf == NULL ? len : line_end + 1;
        }
        /* Only white space on the first line is skipped: a value that
         * starts on a continuation line keeps that line break (Dovecot
         * then shows "Subject:<CRLF> foo" as a literal "foo"). */
        size_t v = (size_t)(colon - hdr) + 1;
        while (v < field_end && is_wsp(hdr[v])) {
            v++;
        }
        field_out->name = span_make(hdr + p, name_end - p);
        field_out->value = span_make(hdr + v, field_end - v);
        *pos = next;
        return true;
    }
    *pos = len;
    return false;
}

bool
imap_rfc822_is_atext(unsigned char c)
{
    if (c >= 0x80) {
        return true; /* RFC 6532 UTF-8, and 8-bit junk treated alike */
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

bool
imap_rfc822_is_token_char(unsigned char c)
{
    if (c <= 0x20 || c == 0x7f) {
        return false;
    }
    if (c >= 0x80) {
        return true; /* 8-bit junk: keep it in the token, Dovecot does too */
    }
    return strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

size_t
imap_rfc822_skip_cfws(const char *s, size_t len, size_t pos)
{
    size_t depth = 0;
    while (pos < len) {
        char c = s[pos];
        if (depth > 0) {
            if (c == '\\') {
                pos += pos + 1 < len ? 2 : 1;
                continue;
            }
            if (c == '(') {
                depth++;
            } else if (c == ')') {
                depth--;
            }
            pos++;
            continue;
        }
        if (c == '(') {
            depth = 1;
            pos++;
        } else if (is_wsp(c) || c == '\r' || c == '\n') {
            pos++;
        } else {
            break;
        }
    }
    return pos;
}

size_t
imap_rfc822_quoted_end(const char *s, size_t len, size_t pos, bool *is_closed_out)
{
    ASSERT(pos < len);
    ASSERT(s[pos] == '"');
    pos++;
    while (pos < len) {
        if (s[pos] == '\\') {
            pos += pos + 1 < len ? 2 : 1;
            continue;
        }
        if (s[pos] == '"') {
            *is_closed_out = true;
            return pos + 1;
        }
        pos++;
    }
    *is_closed_out = false;
    return len;
}

size_t
imap_rfc822_token_end(const char *s, size_t len, size_t pos)
{
    while (pos < len && imap_rfc822_is_token_char((unsigned char)s[pos])) {
        pos++;
    }
    return pos;
}

void
imap_rfc822_value_produce(const void *arg, struct imap_quote_sink *sink)
{
    const struct imap_rfc822_value *value = arg;
    const char *s = value->ptr;
    size_t len = value->len;
    switch (value->kind) {
    case IMAP_RFC822_VALUE_RAW:
        imap_quote_sink_put(sink, s, len);
        break;
    case IMAP_RFC822_VALUE_NOLF: {
        size_t run = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '\r' || s[i] == '\n') {
                imap_quote_sink_put(sink, s + run, i - run);
                run = i + 1;
            }
        }
        imap_quote_sink_put(sink, s + run, len - run);
        break;
    }
    case IMAP_RFC822_VALUE_QUOTED:
        produce_quoted(s, len, sink);
        break;
    case IMAP_RFC822_VALUE_PHRASE:
        produce_words(s, len, true, sink);
        break;
    case IMAP_RFC822_VALUE_LOCAL:
        produce_words(s, len, false, sink);
        break;
    }
}

void
imap_rfc822_value_write(struct imap_out *out, const struct imap_rfc822_value *value,
                        unsigned flags)
{
    if (value->ptr == NULL) {
        imap_out_cstr(out, "NIL");
        return;
    }
    imap_out_produced(out, imap_rfc822_value_produce, value, flags);
}

bool
imap_rfc822_param_next(const char *s, size_t len, size_t *pos,
                       struct imap_rfc822_param *param_out)
{
    size_t p = imap_rfc822_skip_cfws(s, len, *pos);
    *pos = len;
    if (p >= len || s[p] != ';') {
        return false;
    }
    p = imap_rfc822_skip_cfws(s, len, p + 1);
    size_t name_start = p;
    p = imap_rfc822_token_end(s, len, p);
    if (p == name_start) {
        return false;
    }
    param_out->name = span_make(s + name_start, p - name_start);
    p = imap_rfc822_skip_cfws(s, len, p);
    if (p >= len || s[p] != '=') {
        return false;
    }
    p = imap_rfc822_skip_cfws(s, len, p + 1);
    if (p < len && s[p] == '"') {
        bool is_closed = false;
        size_t end = imap_rfc822_quoted_end(s, len, p, &is_closed);
        param_out->value = (struct imap_rfc822_value){
            .ptr = s + p + 1,
            .len = (is_closed ? end - 1 : end) - (p + 1),
            .kind = IMAP_RFC822_VALUE_QUOTED,
        };
        p = end;
    } else {
        size_t value_start = p;
        p = imap_rfc822_token_end(s, len, p);
        if (p == value_start) {
            return false;
        }
        param_out->value = (struct imap_rfc822_value){
            .ptr = s + value_start, .len = p - value_start, .kind = IMAP_RFC822_VALUE_RAW,
        };
    }
    *pos = p;
    return true;
}

static bool
is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* The inside of a quoted string: line breaks dropped, "\x" gives x. */
static void
produce_quoted(const char *s, size_t len, struct imap_quote_sink *sink)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            imap_quote_sink_put(sink, s + run, i - run);
            run = i + 1;
        } else if (s[i] == '\\' && i + 1 < len) {
            imap_quote_sink_put(sink, s + run, i - run);
            i++;
            run = i;
        }
    }
    imap_quote_sink_put(sink, s + run, len - run);
}

/* Phrase: words (atext and '.' runs, quoted strings) with one space between
 * (RFC 5322 obs-phrase, as Dovecot's rfc822_parse_phrase). Local: the same
 * words with nothing between. Comments and white space are dropped; any
 * other special ends the walk. */
static void
produce_words(const char *s, size_t len, bool is_phrase, struct imap_quote_sink *sink)
{
    size_t p = imap_rfc822_skip_cfws(s, len, 0);
    bool is_first = true;
    while (p < len) {
        unsigned char c = (unsigned char)s[p];
        size_t start = p;
        if (c == '"') {
            bool is_closed = false;
            size_t end = imap_rfc822_quoted_end(s, len, p, &is_closed);
            if (is_phrase && !is_first) {
                imap_quote_sink_put(sink, " ", 1);
            }
            produce_quoted(s + start + 1, (is_closed ? end - 1 : end) - (start + 1), sink);
            p = end;
        } else if (imap_rfc822_is_atext(c) || c == '.') {
            while (p < len && (imap_rfc822_is_atext((unsigned char)s[p]) || s[p] == '.')) {
                p++;
            }
            if (is_phrase && !is_first) {
                imap_quote_sink_put(sink, " ", 1);
            }
            imap_quote_sink_put(sink, s + start, p - start);
        } else {
            break;
        }
        is_first = false;
        p = imap_rfc822_skip_cfws(s, len, p);
    }
}
