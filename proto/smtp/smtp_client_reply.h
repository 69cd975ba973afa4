/*
 * proto/smtp/smtp_client_reply.h - SMTP replies (RFC 5321 section 4.2) as
 * the client reads them: "250-..." continuation lines, "250 ..." last line,
 * the enhanced status code (RFC 3463, RFC 2034) and the text, all bounded.
 *
 * Pure and incremental: fed bytes in any split, no allocation, no I/O. A
 * reply line ends at LF; a CR right before it is dropped (servers that end
 * lines with a bare LF are tolerated, as Postfix does).
 * Limits: a line of SMTP_CLIENT_REPLY_LINE_BYTES_MAX (RFC 5321 says 512;
 * we are lenient to 2048 like Postfix's line_length_limit), at most
 * SMTP_CLIENT_REPLY_LINES_MAX lines and SMTP_CLIENT_REPLY_BYTES_MAX bytes per
 * reply; beyond any of them, or on anything that is not a reply line, the
 * parser stops in SMTP_CLIENT_REPLY_ERROR for good (the caller closes).
 * The text kept for reports is the first SMTP_CLIENT_REPLY_TEXT_BYTES of the
 * lines' texts joined by single spaces; a longer text sets is_text_truncated
 * (a report's diagnostic, never a protocol decision, depends on it).
 */
#ifndef TOASTER_PROTO_SMTP_CLIENT_REPLY_H
#define TOASTER_PROTO_SMTP_CLIENT_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

#define SMTP_CLIENT_REPLY_LINE_BYTES_MAX 2048 /* CR LF excluded */
#define SMTP_CLIENT_REPLY_LINES_MAX 128
#define SMTP_CLIENT_REPLY_BYTES_MAX (64 * 1024)
#define SMTP_CLIENT_REPLY_TEXT_BYTES 1024

enum smtp_client_reply_status {
    SMTP_CLIENT_REPLY_NEED_MORE, /* all input used, no complete line yet */
    SMTP_CLIENT_REPLY_LINE,      /* one line parsed: see line_* and is_last */
    SMTP_CLIENT_REPLY_ERROR,     /* see error; every later call returns it too */
};

enum smtp_client_reply_error {
    SMTP_CLIENT_REPLY_OK = 0,
    SMTP_CLIENT_REPLY_SYNTAX,         /* not "ddd", "ddd ", "ddd-"; code outside 200..599; NUL */
    SMTP_CLIENT_REPLY_LINE_TOO_LONG,  /* > SMTP_CLIENT_REPLY_LINE_BYTES_MAX */
    SMTP_CLIENT_REPLY_TOO_MANY_LINES, /* > SMTP_CLIENT_REPLY_LINES_MAX */
    SMTP_CLIENT_REPLY_TOO_LONG,       /* > SMTP_CLIENT_REPLY_BYTES_MAX */
    SMTP_CLIENT_REPLY_CODE_MISMATCH,  /* a continuation line with another code */
};

/* A complete reply. */
struct smtp_client_reply {
    uint16_t code;          /* 200..599 */
    bool has_enhanced;      /* first line began with "c.s.d " and c = code / 100 */
    uint8_t enhanced_class; /* 2, 4 or 5 */
    uint16_t enhanced_subject;
    uint16_t enhanced_detail;
    struct span text; /* texts after the code, joined by ' '; borrowed */
    bool is_text_truncated;
};

struct smtp_client_reply_parser {
    /* Private. */
    char line[SMTP_CLIENT_REPLY_LINE_BYTES_MAX + 1];
    size_t line_len;
    size_t line_count;  /* lines of the current reply */
    size_t reply_bytes; /* bytes of the current reply */
    bool is_reply_open;
    char text[SMTP_CLIENT_REPLY_TEXT_BYTES];
    size_t text_len;
    /* Results, valid after SMTP_CLIENT_REPLY_LINE until the next feed. */
    struct smtp_client_reply reply; /* complete when is_last */
    struct span line_text;          /* this line's text after "ddd-" */
    bool is_last;
    size_t line_index; /* 0 for the first line of a reply */
    enum smtp_client_reply_error error;
};

void smtp_client_reply_init(struct smtp_client_reply_parser *parser);

/* Consume bytes until one reply line is complete (SMTP_CLIENT_REPLY_LINE,
 * *in_used just past its LF), the input is used up (NEED_MORE) or an error.
 * After a line with is_last set, parser->reply is the whole reply. */
enum smtp_client_reply_status smtp_client_reply_feed(struct smtp_client_reply_parser *parser,
                                                     const uint8_t *in, size_t in_len,
                                                     size_t *in_used);

/* True when a reply is partly read (some lines, no last line yet) or a line
 * is partly buffered: bytes are owed by the server. */
bool smtp_client_reply_is_pending(const struct smtp_client_reply_parser *parser);

/* Parse "c.s.d" at the start of text (RFC 3463: class 2, 4 or 5, subject and
 * detail of 1 to 3 digits), followed by a space or the end. Returns the
 * length of the code or 0 when there is none. */
size_t smtp_client_reply_enhanced(struct span text, uint8_t *class_out, uint16_t *subject_out,
                                  uint16_t *detail_out);

const char *smtp_client_reply_error_name(enum smtp_client_reply_error error);

#endif
