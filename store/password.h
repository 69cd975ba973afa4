/*
 * store/password.h - check a password against a users_file hash, the way
 * Dovecot's passwd-file does: "{SCHEME}hash" with SCHEME one of PLAIN,
 * CLEARTEXT, CRYPT, MD5-CRYPT, SHA256-CRYPT, SHA512-CRYPT, BLF-CRYPT (and
 * yescrypt "$y$" under {CRYPT}), or a bare crypt(3) string ("$6$...",
 * "$2y$...", "$y$...") as Dovecot's default scheme CRYPT reads it.
 *
 * crypt(3) is deliberately slow (that is its job): call this on a worker
 * thread, never a reactor. Any worker: no shared state.
 */
#ifndef TOASTER_STORE_PASSWORD_H
#define TOASTER_STORE_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_BYTES_MAX 1024 /* longer input never matches */
#define PASSWORD_HASH_BYTES_MAX 512

/* Returns 0 when password matches stored, -EACCES when it does not,
 * -ENOTSUP for a scheme we do not know (the caller logs it once: the
 * operator must fix users_file), -EINVAL for an empty or malformed hash.
 * Comparisons take the same time for any mismatch position. */
int password_verify(const char *stored, const char *password);

#endif
