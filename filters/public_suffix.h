/*
 * filters/public_suffix.h - the organizational domain of a DNS name from
 * the Public Suffix List (https://publicsuffix.org/list/), as DMARC
 * (RFC 7489 section 3.2) needs it for relaxed alignment and for policy
 * discovery.
 *
 * The list is read once at start-up into one read-only table; lookups
 * never lock and never allocate, so every worker may share the table.
 * Rules of both sections (ICANN and PRIVATE) are used by default, as
 * libpsl does; PUBLIC_SUFFIX_ICANN_ONLY keeps the ICANN section only.
 * IDN rules are stored in the list as UTF-8 U-labels; they are converted
 * to A-labels ("xn--", RFC 3492 Punycode) at load, and names given as
 * UTF-8 are converted the same way, so both forms match. No Unicode
 * normalisation (NFC, IDNA2008 mapping) is done: names must already be in
 * their canonical lower-case form, as the list's entries are.
 */
#ifndef TOASTER_FILTERS_PUBLIC_SUFFIX_H
#define TOASTER_FILTERS_PUBLIC_SUFFIX_H

#include <stddef.h>
#include <stdint.h>

#define PUBLIC_SUFFIX_FILE_DEFAULT "/usr/share/publicsuffix/public_suffix_list.dat"
#define PUBLIC_SUFFIX_FILE_BYTES_MAX (8u * 1024 * 1024) /* the 2023 list is 246 KB */
#define PUBLIC_SUFFIX_RULES_MAX 100000u                 /* the 2023 list has ~9400 */
#define PUBLIC_SUFFIX_LINE_BYTES_MAX 255u               /* longer lines: load error */
#define PUBLIC_SUFFIX_NAME_BYTES_MAX 253u               /* a DNS name, no trailing dot */

enum public_suffix_flags {
    PUBLIC_SUFFIX_ALL = 0,        /* ICANN and PRIVATE rules (libpsl's default) */
    PUBLIC_SUFFIX_ICANN_ONLY = 1, /* ignore the ===BEGIN PRIVATE DOMAINS=== section */
};

struct public_suffix;

/* Read the list at path. Returns 0 and sets *ps_out (owned by the caller,
 * freed with public_suffix_destroy), -ENOENT/-EACCES/... from open/read,
 * -EFBIG for a file over PUBLIC_SUFFIX_FILE_BYTES_MAX, -E2BIG for more than
 * PUBLIC_SUFFIX_RULES_MAX rules, -EINVAL for a line over
 * PUBLIC_SUFFIX_LINE_BYTES_MAX or a rule that is not a domain name (with
 * *line_out set to its 1-based line number when line_out is not NULL),
 * -ENOMEM. */
int public_suffix_load(const char *path, unsigned flags, struct public_suffix **ps_out,
                       unsigned *line_out);

/* The same from bytes in memory (tests, fuzzing). */
int public_suffix_load_buffer(const char *text, size_t len, unsigned flags,
                              struct public_suffix **ps_out, unsigned *line_out);

void public_suffix_destroy(struct public_suffix **ps);

/* Number of rules loaded (normal + wildcard + exception). */
size_t public_suffix_rule_count(const struct public_suffix *ps);

/* The public suffix of name per the list's algorithm (a name no rule
 * matches has its last label as suffix, the implicit "*" rule). name may
 * be mixed case, may end in one dot, may use A-labels or UTF-8 U-labels.
 * Writes the suffix in lower case A-label form to out (NUL-terminated).
 * Returns 0, -EINVAL for a name that is not a domain name (empty label,
 * label over 63 octets, name over 253 octets, bad UTF-8), -ENOSPC when out
 * is too small. */
int public_suffix_suffix(const struct public_suffix *ps, const char *name, char *out,
                         size_t out_bytes);

/* The organizational domain (RFC 7489 3.2): the public suffix plus one
 * label, in lower case A-label form. For a name that is itself a public
 * suffix there is none; then the name itself (lower-cased) is written and
 * 1 is returned, so callers can still compare. Returns 0, 1, or the
 * errors of public_suffix_suffix. */
int public_suffix_org_domain(const struct public_suffix *ps, const char *name, char *out,
                             size_t out_bytes);

/* Convert name (UTF-8 or ASCII) to lower-case A-label form with no
 * trailing dot. Returns 0, -EINVAL, -ENOSPC. Used by DMARC to compare. */
int public_suffix_normalize(const char *name, char *out, size_t out_bytes);

#endif
