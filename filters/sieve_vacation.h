/*
 * filters/sieve_vacation.h - what happens after a Sieve script chose
 * "vacation" (RFC 5230): whether a reply may go at all (sections 4.5 and
 * 4.6 and RFC 3834's rules against loops), the key under which responses
 * to one sender are remembered for the period, and the reply message
 * itself (RFC 3834 Auto-Submitted, In-Reply-To/References, "Auto:"
 * subject, :mime). Pure: no I/O; the delivery side stores the key in the
 * key-value store and queues the reply with a null sender.
 */
#ifndef TOASTER_FILTERS_SIEVE_VACATION_H
#define TOASTER_FILTERS_SIEVE_VACATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_run.h"

#define SIEVE_VACATION_KEY_BYTES 80u       /* "vacation:" + hex SHA-256 + NUL */
#define SIEVE_VACATION_REPLY_BYTES_MAX (256u * 1024u)
#define SIEVE_VACATION_SUBJECT_BYTES_MAX 256u /* reply Subject, UTF-8, before encoding */
#define SIEVE_VACATION_REFERENCES_MAX 20u     /* msg-ids in the reply's References */
#define SIEVE_VACATION_ADDRESS_BYTES_MAX 320u /* longer words in To/Cc never match */

/* Whether a reply may go to the message's sender: not to the null sender
 * or MAILER-DAEMON/owner-/-request addresses, not when Auto-Submitted is
 * other than "no", not to lists (List-*, Precedence bulk/list/junk), not
 * to the user himself, and only when the user (message->user, or one of
 * vacation->addresses) is in To, Cc, Bcc, Resent-To, Resent-Cc or
 * Resent-Bcc. False with *why_out (static text) when not. */
bool sieve_vacation_should_reply(const struct sieve_message *message,
                                 const struct sieve_vacation *vacation, const char **why_out);

/* The response-tracking key: one per user, sender (any case) and
 * handle: "vacation:" + hex SHA-256, NUL-terminated. NULL counts as "". */
void sieve_vacation_key(const char *user, const char *sender, const char *handle,
                        char key_out[SIEVE_VACATION_KEY_BYTES]);

/* Composes the reply (CRLF line ends, a complete RFC 5322 message) into
 * a malloc'd buffer the caller frees: From (vacation->from, else the
 * user's address the message was sent to: message->user or a matching
 * :addresses entry, as Pigeonhole does), To the sender,
 * Subject (vacation->subject, else "Auto: " + the original subject),
 * In-Reply-To / References from the original Message-ID, Auto-Submitted:
 * auto-replied, Precedence: bulk, Date from now_unix (UTC), a Message-ID
 * at hostname, and the reason as text/plain UTF-8 (quoted-printable when
 * a line is over 998 bytes) or, with is_mime, as the MIME entity given
 * (its header fields join the reply's, after MIME-Version). Header values
 * with non-ASCII text are RFC 2047 encoded; CR/LF in script-given values
 * become spaces.
 * Returns 0 or -ENOMEM / -E2BIG (the reply would pass
 * SIEVE_VACATION_REPLY_BYTES_MAX, or hold a line over 998 bytes that
 * cannot be re-encoded: in a :mime entity, :from or hostname), or -EINVAL
 * (no envelope sender to reply to, a :mime reason whose header block is
 * not one, now_unix outside the years 0..9999). */
int sieve_vacation_compose(const struct sieve_message *message,
                           const struct sieve_vacation *vacation, const char *hostname,
                           int64_t now_unix, char **bytes_out, size_t *len_out);

#endif
