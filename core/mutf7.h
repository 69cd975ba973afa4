/*
 * core/mutf7.h - RFC 3501 section 5.1.3 modified UTF-7 mailbox names, to
 * and from UTF-8. In core because both the IMAP protocol code and the
 * Maildir store (whose folder names are mUTF-7, as Dovecot keeps them)
 * check them.
 *
 * Pure, no allocation; output goes to a caller buffer and never past it.
 * Strict both ways, because mailbox names become directory names: only the
 * canonical encoding is accepted (what mutf7_encode() would produce),
 * so one name has one spelling. Rejected: raw bytes outside 0x20..0x7e, an
 * unterminated "&", an empty shift other than "&-", base64 that encodes
 * printable ASCII, two adjacent shifts ("&AGE-&AGE-"), non-zero or too many
 * padding bits, an unpaired surrogate, and control characters (U+0000..
 * U+001F, U+007F..U+009F) in either form.
 */
#ifndef TOASTER_CORE_MUTF7_H
#define TOASTER_CORE_MUTF7_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

/* Decode modified UTF-7 into UTF-8. Returns 0 and sets *len_out, -EINVAL
 * when the input is not canonical modified UTF-7, or -ENOSPC when the
 * result does not fit in out_bytes (out may then hold a partial result).
 * The UTF-8 output is never longer than twice the input. */
int mutf7_decode(struct span in, char *out, size_t out_bytes, size_t *len_out);

/* Encode UTF-8 into modified UTF-7. Returns 0 and sets *len_out, -EINVAL
 * when the input is not well-formed UTF-8 or holds a control character,
 * or -ENOSPC when the result does not fit. */
int mutf7_encode(struct span utf8, char *out, size_t out_bytes, size_t *len_out);

/* True when in is canonical modified UTF-7 (decode would succeed). */
bool mutf7_is_valid(struct span in);

#endif
