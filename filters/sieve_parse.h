/*
 * filters/sieve_parse.h - the Sieve grammar (RFC 5228 sections 8.2 and
 * 8.3): tokens from sieve_lex become the tree of filters/sieve_tree.h,
 * every node with its line; and the error list every stage writes to.
 *
 * The parser checks syntax only (which commands exist is the
 * validator's business). It records each syntax error with its line and
 * skips to the end of the command to look for more; a lexical error or
 * a broken limit ends parsing. Runs on the compiling thread; no I/O.
 * Limits: block and test nesting, string-list entries, node count,
 * arguments per command (SIEVE_ARGUMENTS_MAX), the arena.
 */
#ifndef TOASTER_FILTERS_SIEVE_PARSE_H
#define TOASTER_FILTERS_SIEVE_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_tree.h"

/* Arguments of one command or test, tags and tag values included
 * (Pigeonhole's SIEVE_MAX_COMMAND_ARGUMENTS). */
#define SIEVE_ARGUMENTS_MAX 32u

/* An empty list keeping at most count_max errors (clamped to
 * 1..SIEVE_ERRORS_MAX). */
void sieve_errors_init(struct sieve_errors *errors, size_t count_max);

/* Records an error at line (0: about the whole script). Past count_max
 * it only sets is_truncated. The text is cut to SIEVE_ERROR_TEXT_BYTES. */
void sieve_errors_add(struct sieve_errors *errors, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Room for sieve_errors_format()'s whole text with an eol of at most 2
 * bytes: per error "line 4294967295: error: " + text + "." + eol, and
 * the closing "more errors follow" line. */
#define SIEVE_ERRORS_TEXT_BYTES_MAX ((SIEVE_ERRORS_MAX + 1u) * (SIEVE_ERROR_TEXT_BYTES + 32u))

/* The errors as sievec prints them, one per line ending in eol:
 * "line 3: error: unknown command 'fileintoo' (...)." and, when some
 * were left out, "error: more errors follow (only the first N are
 * shown).". Always NUL-terminates buf (size > 0); returns the length the
 * whole text needs (like snprintf), so a result >= size means it was cut. */
size_t sieve_errors_format(const struct sieve_errors *errors, const char *eol, char *buf,
                           size_t size);

/* Parses text[0..len) into script->commands (allocated from
 * script->arena, which the caller has initialised). Returns 0; -EINVAL
 * after recording syntax errors or a broken limit in errors (the tree
 * is then incomplete: do not validate or run it); -ENOMEM
 * when malloc failed (an operating error: nothing recorded). */
int sieve_parse(struct sieve_script *script, const char *text, size_t len,
                const struct sieve_limits *limits, struct sieve_errors *errors);

#endif
