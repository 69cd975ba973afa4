/*
 * core/toasterctl_sieve.h - `toasterctl sieve-test SCRIPT MESSAGE [-f FROM]
 * [-a TO] [-u USER]`: compiles a Sieve script, runs it over a message
 * file (with the folders, included scripts and address lists of USER when
 * given) and prints the actions it chose, one per line, delivering
 * nothing:
 *   keep | fileinto "FOLDER" | discard | redirect "ADDRESS" |
 *   reject "REASON" | ereject "REASON" | vacation "TO" "SUBJECT"
 * keep and fileinto are followed by ` :flags "\\Seen" ...` when imap4flags
 * set flags. Strings are written as Sieve quoted strings (backslash and
 * double quote escaped).
 */
#ifndef TOASTER_CORE_TOASTERCTL_SIEVE_H
#define TOASTER_CORE_TOASTERCTL_SIEVE_H

#include "core/config.h"

/* The largest message sieve-test reads. */
#define TOASTERCTL_SIEVE_MESSAGE_BYTES_MAX (64u * 1024u * 1024u)

/* argv: SCRIPT MESSAGE and the options. Returns the exit code: 0 the
 * actions were printed; 1 the script failed at run time (the implicit
 * keep is printed, the error goes to stderr) or the message, the user or
 * the script file could not be read; 2 the script does not compile (each
 * error on stderr as "line N: text") or the arguments are wrong. */
int toasterctl_sieve_test(const struct config *config, int argc, char **argv);

#endif
