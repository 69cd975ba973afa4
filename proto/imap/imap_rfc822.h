/*
 * proto/imap/imap_rfc822.h - RFC 5322 / RFC 2045 lexical pieces shared by
 * the MIME parser and the ENVELOPE writer: header field iteration over a
 * raw header block, CFWS skipping, tokens, quoted strings, MIME parameters,
 * and "values" (a raw span plus how to decode it) that imap_quote writes
 * without a scratch buffer.
 *
 * Everything borrows from the caller's bytes; nothing allocates.
 */
#ifndef TOASTER_PROTO_IMAP_RFC822_H
#define TOASTER_PROTO_IMAP_RFC822_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"
#include "proto/imap/imap_quote.h"

/* One header field. value starts after the colon and the white space
 * that follows it on the same line, and ends before the line break that ends the
 * field; folding line breaks stay inside it. */
struct imap_rfc822_field {
    struct span name;
    struct span value;
};

/* Next field of the header block hdr[0..len) from *pos; false at the end
 * (empty line or end of bytes). Lines without a colon are skipped. */
bool imap_rfc822_header_next(const char *hdr, size_t len, size_t *pos,
                             struct imap_rfc822_field *field_out);

/* RFC 5322 atext. */
bool imap_rfc822_is_atext(unsigned char c);
/* RFC 2045 token character (CHAR except SPACE, CTLs and tspecials). */
bool imap_rfc822_is_token_char(unsigned char c);

/* Index of the first byte at or after pos that is not white space, a line
 * break or (nested) comment. Unclosed comments run to len. */
size_t imap_rfc822_skip_cfws(const char *s, size_t len, size_t pos);

/* s[pos] is '"': index after the closing quote, or len when unclosed
 * (*is_closed_out tells which). */
size_t imap_rfc822_quoted_end(const char *s, size_t len, size_t pos, bool *is_closed_out);

/* Index after a run of RFC 2045 token characters starting at pos. */
size_t imap_rfc822_token_end(const char *s, size_t len, size_t pos);

enum imap_rfc822_value_kind {
    IMAP_RFC822_VALUE_RAW,    /* bytes as they are */
    IMAP_RFC822_VALUE_NOLF,   /* bytes without CR and LF */
    IMAP_RFC822_VALUE_QUOTED, /* a quoted-string's inside: no CR/LF, quoted-pairs resolved */
    IMAP_RFC822_VALUE_PHRASE, /* words (atoms with dots, quoted strings) joined by one space */
    IMAP_RFC822_VALUE_LOCAL,  /* words and dots concatenated, CFWS dropped */
};

struct imap_rfc822_value {
    const char                 *ptr; /* NULL: absent (NIL) */
    size_t                      len;
    enum imap_rfc822_value_kind kind;
};

/* imap_quote producer for a struct imap_rfc822_value. */
void imap_rfc822_value_produce(const void *value, struct imap_quote_sink *sink);

/* nstring of a value: NIL when value->ptr is NULL. */
void imap_rfc822_value_write(struct imap_out *out, const struct imap_rfc822_value *value,
                             unsigned flags);

/* One MIME parameter (RFC 2045 section 5.1): name and value, the value
 * either a token (RAW) or a quoted string's inside (QUOTED). */
struct imap_rfc822_param {
    struct span              name;
    struct imap_rfc822_value value;
};

/* Next "; name=value" from s[*pos..len); false at the end or at the first
 * syntax error (the rest is ignored, as Dovecot does). */
bool imap_rfc822_param_next(const char *s, size_t len, size_t *pos,
                            struct imap_rfc822_param *param_out);

#endif
