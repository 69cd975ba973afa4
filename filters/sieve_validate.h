/*
 * filters/sieve_validate.h - compiling a Sieve script: lex, parse and
 * check it against the table of known commands, tests, tags and
 * extensions (what Pigeonhole's sievec does before it writes a binary),
 * giving a validated tree (filters/sieve_tree.h) or a list of errors
 * with line numbers.
 *
 * ManageSieve's PUTSCRIPT and CHECKSCRIPT (RFC 5804) call
 * sieve_compile() and answer NO with sieve_errors_format()'s text; its
 * capability list "SIEVE" is sieve_capabilities(). The interpreter runs
 * the validated tree. Runs on whatever thread calls it (a worker: a
 * 1 MiB script takes milliseconds); no I/O, no global state.
 */
#ifndef TOASTER_FILTERS_SIEVE_VALIDATE_H
#define TOASTER_FILTERS_SIEVE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/sieve_tree.h"

/* Compiles text[0..len) (UTF-8 script; need not be NUL-terminated).
 * limits may be NULL for the defaults; each field above its default, or
 * 0, counts as the default (configuration lowers limits, never raises
 * them). errors_out is always initialised.
 * Returns 0 and sets *script_out (caller frees with sieve_script_free());
 * -EINVAL when the script is invalid (errors_out says why, with lines;
 * *script_out is NULL); -EFBIG when it is longer than
 * limits->script_bytes_max (also recorded in errors_out, line 0); or
 * -ENOMEM when memory ran out (nothing recorded: a temporary failure). */
int sieve_compile(const char *text, size_t len, const struct sieve_limits *limits,
                  struct sieve_script **script_out, struct sieve_errors *errors_out);

/* Frees the script and its whole tree; NULLs *script. NULL is fine. */
void sieve_script_free(struct sieve_script **script);

/* Whether the script requires ext (directly or implied, as "spamtestplus"
 * implies "spamtest"). */
bool sieve_script_requires(const struct sieve_script *script, enum sieve_ext ext);

/* Checks the parsed tree of script (from sieve_parse()) and fills in the
 * resolved fields; decodes encoded-character strings when required.
 * Returns 0, or -EINVAL with the errors recorded. Exposed for tests;
 * sieve_compile() is the usual entry. */
int sieve_validate(struct sieve_script *script, struct sieve_errors *errors);

/* The extensions this validator knows, space-separated, for the
 * ManageSieve "SIEVE" capability (static string). */
const char *sieve_capabilities(void);

/* Whether s[0..len) is an address redirect accepts (an RFC 5322
 * addr-spec: dot-atom or quoted local part, a domain name or a literal).
 * The validator checks constant addresses; the interpreter those made
 * from variables. */
bool sieve_redirect_address_valid(const char *s, size_t len);

/* Whether s[0..len) is an RFC 5322 field name (1 to 998 of the printable
 * characters but ':'): what header tests and editheader accept; the
 * interpreter checks names made from variables with it at run time. */
bool sieve_field_name_valid(const char *s, size_t len);

/* The capability name of ext ("fileinto"), or NULL for SIEVE_EXT_NONE. */
const char *sieve_ext_name(enum sieve_ext ext);

#endif
