/*
 * proto/smtp/smtp_from.h - the addresses of a message's From: header, for
 * the submission policy (an authenticated user may only write From: with
 * addresses that are theirs).
 *
 * Pure: a header block in, addresses out; no I/O, no allocation. Reads
 * RFC 5322 mailbox-lists as real mail writes them: display names (atoms,
 * quoted strings, encoded words, obsolete dots), comments (nested),
 * quoted local parts, groups ("team: a@x, b@y;"), obsolete routes in
 * angle brackets, folded lines, and UTF-8 (RFC 6532). Every From: field of
 * the block is read (a message should have one; a second must not hide a
 * forged address).
 * Limits: SMTP_FROM_ADDRESSES_MAX addresses, SMTP_FROM_FIELD_BYTES_MAX
 * per unfolded field.
 */
#ifndef TOASTER_PROTO_SMTP_FROM_H
#define TOASTER_PROTO_SMTP_FROM_H

#include <stdbool.h>
#include <stddef.h>

#include "core/limits.h"

#define SMTP_FROM_ADDRESSES_MAX 32
#define SMTP_FROM_FIELD_BYTES_MAX 16384

enum smtp_from_status {
    SMTP_FROM_OK,        /* one or more addresses */
    SMTP_FROM_ABSENT,    /* no From: field in the block */
    SMTP_FROM_SYNTAX,    /* a From: field that is no mailbox-list */
    SMTP_FROM_TOO_MANY,  /* more than SMTP_FROM_ADDRESSES_MAX, or a field too long */
};

struct smtp_from_result {
    size_t count;
    /* "local@domain": the local part unquoted when it is a plain dot-atom
     * inside quotes, quoted (as in SMTP) otherwise. */
    char   addresses[SMTP_FROM_ADDRESSES_MAX][SMTP_ADDRESS_BYTES_MAX + 1];
};

/* The length of the header block at the start of a message: up to and
 * including the empty line, or 0 when the bytes end before it. */
size_t smtp_from_header_length(const char *message, size_t len);

/* Find every From: field in a header block (the bytes before the empty
 * line; CRLF or LF line ends) and collect their addresses. */
enum smtp_from_status smtp_from_extract(const char *header, size_t len,
                                        struct smtp_from_result *result);

/* Parse one unfolded field value (what follows "From:"), adding to result.
 * Exposed for tests. */
enum smtp_from_status smtp_from_parse_value(const char *value, size_t len,
                                            struct smtp_from_result *result);

#endif
