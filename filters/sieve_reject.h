/*
 * filters/sieve_reject.h - the message a Sieve "reject" (RFC 5429 2.1)
 * sends when the SMTP transaction can no longer refuse the mail: a
 * delivery status notification (RFC 3464, multipart/report;
 * report-type=delivery-status) from MAILER-DAEMON to the envelope sender,
 * "failed" with status 5.7.1 for the recipient, the script's reason as
 * the human-readable part and the original header block as
 * text/rfc822-headers. Pure: no I/O; the delivery side queues it with a
 * null sender (RFC 3464: a DSN is never sent back to a DSN).
 */
#ifndef TOASTER_FILTERS_SIEVE_REJECT_H
#define TOASTER_FILTERS_SIEVE_REJECT_H

#include <stddef.h>
#include <stdint.h>

#define SIEVE_REJECT_BYTES_MAX (512u * 1024u)        /* the whole DSN */
#define SIEVE_REJECT_HEADER_BYTES_MAX (128u * 1024u) /* original header copied, cut on a line */

/* Composes the DSN (CRLF line ends, a complete RFC 5322 message) into a
 * malloc'd buffer the caller frees. original_header[0..header_len) is the
 * rejected message's header block (it may run into the body: the copy
 * stops at the empty line; lines over 998 bytes are cut, the block at
 * SIEVE_REJECT_HEADER_BYTES_MAX). envelope_from is the MAIL FROM path
 * without <> and gets the DSN; recipient is the final recipient refused;
 * reason (UTF-8) is the script's text; hostname names the Reporting-MTA
 * and MAILER-DAEMON's domain; now_unix is the Date. Subject: "Rejected: "
 * + the original subject (RFC 2047 decoded, then encoded again when not
 * ASCII). Returns 0; -EINVAL when envelope_from is NULL or "" (the null
 * sender gets no DSN: the caller discards), or now_unix is outside the
 * years 0..9999; -E2BIG past SIEVE_REJECT_BYTES_MAX or with a header line
 * from recipient, envelope_from or hostname over 998 bytes; -ENOMEM. */
int sieve_reject_compose(const char *original_header, size_t header_len,
                         const char *envelope_from, const char *recipient, const char *reason,
                         size_t reason_len, const char *hostname, int64_t now_unix,
                         char **bytes_out, size_t *len_out);

#endif
