/*
 * proto/smtp/smtp_client_reply.c - reading SMTP replies on the client side.
 *
 * Owns one line buffer and the kept text of the current reply; the caller
 * owns the input. Pure, no allocation; runs on the reactor thread of the
 * outbound connection. Each byte of input is looked at once (memchr for the
 * LF, one copy into the line buffer), so the work is linear in the input and
 * every reply is bounded by SMTP_CLIENT_REPLY_LINES_MAX lines of
 * SMTP_CLIENT_REPLY_LINE_BYTES_MAX and SMTP_CLIENT_REPLY_BYTES_MAX in all.
 *
 * Grammar (RFC 5321 section 4.2): Reply-line = *( Reply-code "-" [ textstring ]
 * CRLF ) Reply-code [ SP textstring ] CRLF, with Reply-code three digits,
 * the first 2..5 and the second 0..5. Tolerated like Postfix: a bare LF line
 * end, "ddd" alone as a last line. Refused: anything else after the code,
 * a NUL byte, a continuation line whose code differs from the first line's.
 */
#include "proto/smtp/smtp_client_reply.h"

#include <assert.h>
#include <string.h>

#include "core/assertions.h"

static_assert(SMTP_CLIENT_REPLY_LINES_MAX * 4 <= SMTP_CLIENT_REPLY_BYTES_MAX,
              "the byte bound leaves room for the line bound");
static_assert(SMTP_CLIENT_REPLY_LINE_BYTES_MAX <= SMTP_CLIENT_REPLY_BYTES_MAX,
              "a reply holds at least one full line");

static enum smtp_client_reply_status reply_line_done(struct smtp_client_reply_parser *parser);
static void reply_text_append(struct smtp_client_reply_parser *parser, struct span text);

void
smtp_client_reply_init(struct smtp_client_reply_parser *parser)
{
    ASSERT(parser != NULL);
    memset(parser, 0, sizeof(*parser));
}

enum smtp_client_reply_status
smtp_client_reply_feed(struct smtp_client_reply_parser *parser, const uint8_t *in, size_t in_len,
                       size_t *in_used)
{
    ASSERT(parser != NULL);
    ASSERT(in_used != NULL);
    ASSERT(in != NULL || in_len == 0);
    *in_used = 0;
    if (parser->error != SMTP_CLIENT_REPLY_OK) {
        return SMTP_CLIENT_REPLY_ERROR;
    }
    if (parser->is_last || !parser->is_reply_open) {
        /* The previous line ended a reply (or none began): its views die now. */
        parser->is_last = false;
        parser->line_text = span_make(NULL, 0);
    }
    const uint8_t *lf = in_len > 0 ? memchr(in, '\n', in_len) : NULL;
    size_t take = lf != NULL ? (size_t)(lf - in) : in_len;
    /* The CR before LF is stored too and dropped at the end, so a line may
     * use one byte more than the bound in the buffer. */
    if (parser->line_len + take > SMTP_CLIENT_REPLY_LINE_BYTES_MAX + 1) {
        parser->error = SMTP_CLIENT_REPLY_LINE_TOO_LONG;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    if (parser->reply_bytes + take + (lf != NULL ? 1 : 0) > SMTP_CLIENT_REPLY_BYTES_MAX) {
        parser->error = SMTP_CLIENT_REPLY_TOO_LONG;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    memcpy(parser->line + parser->line_len, in, take);
    parser->line_len += take;
    parser->reply_bytes += take;
    if (lf == NULL) {
        *in_used = in_len;
        if (parser->line_len == SMTP_CLIENT_REPLY_LINE_BYTES_MAX + 1 &&
            parser->line[parser->line_len - 1] != '\r') {
            parser->error = SMTP_CLIENT_REPLY_LINE_TOO_LONG;
            return SMTP_CLIENT_REPLY_ERROR;
        }
        return SMTP_CLIENT_REPLY_NEED_MORE;
    }
    *in_used = take + 1;
    parser->reply_bytes += 1;
    if (parser->line_len > 0 && parser->line[parser->line_len - 1] == '\r') {
        parser->line_len--;
    }
    if (parser->line_len > SMTP_CLIENT_REPLY_LINE_BYTES_MAX) {
        parser->error = SMTP_CLIENT_REPLY_LINE_TOO_LONG;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    return reply_line_done(parser);
}

bool
smtp_client_reply_is_pending(const struct smtp_client_reply_parser *parser)
{
    ASSERT(parser != NULL);
    return parser->line_len > 0 || (parser->is_reply_open && !parser->is_last);
}

size_t
smtp_client_reply_enhanced(struct span text, uint8_t *class_out, uint16_t *subject_out,
                           uint16_t *detail_out)
{
    ASSERT(class_out != NULL && subject_out != NULL && detail_out != NULL);
    const char *p = text.ptr;
    size_t n = text.len;
    if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.') {
        return 0;
    }
    size_t i = 2;
    uint16_t parts[2] = {0, 0};
    for (size_t part = 0; part < 2; part++) {
        size_t digits = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && digits < 4) {
            parts[part] = (uint16_t)(parts[part] * 10 + (uint16_t)(p[i] - '0'));
            i++;
            digits++;
        }
        if (digits == 0 || digits > 3) {
            return 0;
        }
        if (part == 0) {
            if (i >= n || p[i] != '.') {
                return 0;
            }
            i++;
        }
    }
    if (i < n && p[i] != ' ') {
        return 0;
    }
    *class_out = (uint8_t)(p[0] - '0');
    *subject_out = parts[0];
    *detail_out = parts[1];
    return i;
}

const char *
smtp_client_reply_error_name(enum smtp_client_reply_error error)
{
    switch (error) {
    case SMTP_CLIENT_REPLY_OK:
        return "ok";
    case SMTP_CLIENT_REPLY_SYNTAX:
        return "reply syntax";
    case SMTP_CLIENT_REPLY_LINE_TOO_LONG:
        return "reply line too long";
    case SMTP_CLIENT_REPLY_TOO_MANY_LINES:
        return "too many reply lines";
    case SMTP_CLIENT_REPLY_TOO_LONG:
        return "reply too long";
    case SMTP_CLIENT_REPLY_CODE_MISMATCH:
        return "reply code changes between lines";
    }
    return "?";
}

/* A whole line (without its line end) is in parser->line. */
static enum smtp_client_reply_status
reply_line_done(struct smtp_client_reply_parser *parser)
{
    const char *p = parser->line;
    size_t n = parser->line_len;
    parser->line_len = 0;
    if (n < 3 || memchr(p, '\0', n) != NULL) {
        parser->error = SMTP_CLIENT_REPLY_SYNTAX;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    if (p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '5' || p[2] < '0' || p[2] > '9') {
        parser->error = SMTP_CLIENT_REPLY_SYNTAX;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    bool is_last;
    if (n == 3 || p[3] == ' ') {
        is_last = true;
    } else if (p[3] == '-') {
        is_last = false;
    } else {
        parser->error = SMTP_CLIENT_REPLY_SYNTAX;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    uint16_t code = (uint16_t)((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
    struct span text = n > 4 ? span_make(p + 4, n - 4) : span_make(p + n, 0);
    if (!parser->is_reply_open) {
        parser->is_reply_open = true;
        parser->line_count = 0;
        parser->text_len = 0;
        memset(&parser->reply, 0, sizeof(parser->reply));
        parser->reply.code = code;
        uint8_t cls = 0;
        uint16_t subject = 0;
        uint16_t detail = 0;
        if (smtp_client_reply_enhanced(text, &cls, &subject, &detail) > 0 && cls == code / 100) {
            parser->reply.has_enhanced = true;
            parser->reply.enhanced_class = cls;
            parser->reply.enhanced_subject = subject;
            parser->reply.enhanced_detail = detail;
        }
    } else if (code != parser->reply.code) {
        parser->error = SMTP_CLIENT_REPLY_CODE_MISMATCH;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    parser->line_index = parser->line_count;
    parser->line_count++;
    if (parser->line_count > SMTP_CLIENT_REPLY_LINES_MAX) {
        parser->error = SMTP_CLIENT_REPLY_TOO_MANY_LINES;
        return SMTP_CLIENT_REPLY_ERROR;
    }
    reply_text_append(parser, text);
    parser->line_text = text;
    parser->reply.text = span_make(parser->text, parser->text_len);
    parser->is_last = is_last;
    if (is_last) {
        parser->is_reply_open = false;
        parser->reply_bytes = 0;
    }
    return SMTP_CLIENT_REPLY_LINE;
}

static void
reply_text_append(struct smtp_client_reply_parser *parser, struct span text)
{
    size_t room = sizeof(parser->text) - parser->text_len;
    size_t sep = parser->line_count > 1 ? 1 : 0;
    if (sep + text.len > room) {
        parser->reply.is_text_truncated = true;
    }
    if (sep > 0 && room > 0) {
        parser->text[parser->text_len++] = ' ';
        room--;
    }
    size_t copy = text.len < room ? text.len : room;
    if (copy > 0) {
        memcpy(parser->text + parser->text_len, text.ptr, copy);
        parser->text_len += copy;
    }
    ASSERT(parser->text_len <= sizeof(parser->text));
}
