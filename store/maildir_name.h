/*
 * store/maildir_name.h - parse and build Maildir file names the way Dovecot
 * 2.3 reads and writes them:
 *
 *   <base>[:2,<flags>]      base = everything before the first ':'
 *   base may carry ",S=<size>" and ",W=<vsize>" fields after its first ','
 *
 * The base name is what dovecot-uidlist stores (",S=" and ",W=" included)
 * and what stays the same when flags change. Flags after ":2," are one
 * letter each in ASCII order: upper case letters are system flags (D F P R S
 * T are named; others are kept as they are, as Dovecot does), lower case
 * 'a'..'z' are keywords, indexes 0..25 into dovecot-keywords. Note that
 * Dovecot 2.3 does not map 'P' to $Forwarded: it stores $Forwarded as an
 * ordinary keyword letter (verified with doveadm flags add).
 *
 * The Windows-safe separator ";2," (maildir_broken_filename_sizes /
 * Windows) is not supported: Dovecot uses it only when built for or
 * configured on file systems that refuse ':', which we do not run on.
 *
 * Pure functions: no I/O, no allocation; any thread.
 * Limits: MAILDIR_NAME_BYTES_MAX (NAME_MAX).
 */
#ifndef TOASTER_STORE_MAILDIR_NAME_H
#define TOASTER_STORE_MAILDIR_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"

#define MAILDIR_NAME_BYTES_MAX 255

/* System flags: bit (letter - 'A'). */
#define MAILDIR_FLAG_BIT(letter) (UINT32_C(1) << ((letter) - 'A'))
#define MAILDIR_FLAG_DRAFT    MAILDIR_FLAG_BIT('D')
#define MAILDIR_FLAG_FLAGGED  MAILDIR_FLAG_BIT('F')
#define MAILDIR_FLAG_PASSED   MAILDIR_FLAG_BIT('P')
#define MAILDIR_FLAG_REPLIED  MAILDIR_FLAG_BIT('R') /* \Answered */
#define MAILDIR_FLAG_SEEN     MAILDIR_FLAG_BIT('S')
#define MAILDIR_FLAG_TRASHED  MAILDIR_FLAG_BIT('T') /* \Deleted */
#define MAILDIR_FLAGS_ALL     UINT32_C(0x03ffffff)
#define MAILDIR_KEYWORDS_MAX  26
#define MAILDIR_KEYWORDS_ALL  UINT32_C(0x03ffffff)

struct maildir_name {
    struct span base;     /* before the first ':' (the whole name if none) */
    struct span info;     /* after the first ':' (empty if none) */
    uint64_t    size;     /* ,S= value, valid if has_size */
    uint64_t    vsize;    /* ,W= value, valid if has_vsize */
    uint32_t    flags;    /* upper case letters after ":2," */
    uint32_t    keywords; /* bit i = letter 'a' + i after ":2," */
    bool        has_size;
    bool        has_vsize;
    bool        has_flags;   /* info starts with "2," */
    bool        is_info_odd; /* info has other bytes (digits, punctuation, a
                                second ','): kept by a rename only via info */
};

/* Parses name[0..len). Returns 0 and fills *out (spans point into name),
 * -ENOENT if it is not a message name (empty, or starts with '.': files
 * like .hidden, .., .Trash), or -EINVAL for junk an operator may have left
 * (contains '/' or NUL, longer than MAILDIR_NAME_BYTES_MAX, empty base).
 * A malformed ",S=" / ",W=" field just leaves has_size / has_vsize false. */
int maildir_name_parse(const char *name, size_t len, struct maildir_name *out);

/* Writes "<base>:2,<flags><keywords>" (flags in ASCII order, each once)
 * into out, NUL-terminated, and sets *len_out. base must not contain ':'
 * or '/'. Returns 0, -EINVAL (bad base or bits outside the 26 letters) or
 * -ENAMETOOLONG (the name would exceed MAILDIR_NAME_BYTES_MAX or
 * out_bytes). */
int maildir_name_build(struct span base, uint32_t flags, uint32_t keywords, char *out,
                       size_t out_bytes, size_t *len_out);

#endif
