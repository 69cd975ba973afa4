/*
 * core/sasl.h - decoding SASL responses (base64 on a command line) for
 * the protocols that take passwords: PLAIN (RFC 4616) for IMAP and SMTP,
 * LOGIN's username and password lines for SMTP. Pure functions, any
 * thread; output goes straight into the caller's bounded buffers.
 */
#ifndef TOASTER_CORE_SASL_H
#define TOASTER_CORE_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

/* PLAIN: base64 of "authzid NUL authcid NUL password" into user and
 * password, NUL-terminated. false (and both wiped) when the base64 is
 * malformed ("=" alone, an empty response, included), a field does not
 * fit, the user is empty, the password holds a NUL, or a non-empty authzid
 * differs from the authcid (there are no master users). */
bool sasl_plain_decode(struct span b64, char *user, size_t user_bytes, char *password,
                       size_t password_bytes);

/* One base64 text (LOGIN's username or password) into out, NUL-terminated.
 * false (and out wiped) when the base64 is malformed, the text does not
 * fit, is empty, or holds a NUL. */
bool sasl_text_decode(struct span b64, char *out, size_t out_bytes);

#endif
