/*
 * proto/imap/imap_envelope.h - IMAP ENVELOPE (RFC 3501 section 7.4.2,
 * RFC 9051 section 7.5.2) from a raw header block.
 *
 * Output is written into an imap_out; check out->is_overflow afterwards.
 * Values are not decoded (encoded words stay as they are); addresses are
 * parsed per RFC 5322 into (name adl mailbox host) with group syntax as
 * RFC 3501 says, and broken addresses degrade the way Dovecot 2.3's do
 * (MISSING_MAILBOX / MISSING_DOMAIN / SYNTAX_ERROR; the list ends where an
 * address is not followed by ','). The last Date, Subject, In-Reply-To
 * and Message-ID count; repeated address fields add up.
 */
#ifndef TOASTER_PROTO_IMAP_ENVELOPE_H
#define TOASTER_PROTO_IMAP_ENVELOPE_H

#include <stddef.h>

#include "proto/imap/imap_quote.h"

/* Write "(date subject from sender reply-to to cc bcc in-reply-to
 * message-id)" for hdr[0..len) (a header block, the empty line optional).
 * flags: IMAP_QUOTE_UTF8 or 0. */
void imap_envelope_write(struct imap_out *out, const char *hdr, size_t len, unsigned flags);

/* Write one address list field value as "((...)(...))", or NIL when it
 * holds no address. Returns the number of address structures written. */
size_t imap_envelope_write_addresses(struct imap_out *out, const char *value, size_t len,
                                     unsigned flags);

#endif
