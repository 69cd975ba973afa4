/*
 * proto/imap/imap_bodystructure.h - IMAP BODY and BODYSTRUCTURE
 * (RFC 3501 section 7.4.2, RFC 9051 section 7.5.2) from parsed MIME parts.
 *
 * Written into an imap_out; check out->is_overflow afterwards. The form is
 * Dovecot's: every single part carries all four extension fields (md5,
 * disposition, language, location), every multipart all four (params,
 * disposition, language, location); a multipart without children shows one
 * empty text/plain part; text parts without a charset get
 * ("charset" "us-ascii") appended.
 */
#ifndef TOASTER_PROTO_IMAP_BODYSTRUCTURE_H
#define TOASTER_PROTO_IMAP_BODYSTRUCTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_quote.h"

/* Write the body structure of parts[index] (0: the whole message) of msg,
 * parsed by imap_mime_parse into parts[0..part_count). is_extended: true
 * for BODYSTRUCTURE, false for BODY. flags: IMAP_QUOTE_UTF8 or 0.
 * Recursion follows the part tree, at most IMAP_MIME_DEPTH_MAX deep. */
void imap_bodystructure_write(struct imap_out *out, const char *msg,
                              const struct imap_mime_part *parts, size_t part_count,
                              uint32_t index, bool is_extended, unsigned flags);

#endif
