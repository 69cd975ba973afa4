/*
 * store/maildir_keywords.h - Dovecot's dovecot-keywords file: the map from
 * the keyword letters 'a'..'z' in Maildir file names to IMAP keywords.
 *
 * Format (Dovecot 2.3.19, verified with doveadm): one line per keyword,
 * "<index> <keyword>\n", index 0..25 in increasing order; index i is the
 * letter 'a' + i. Lines that do not parse, indexes past 25 and repeated
 * indexes are skipped on read, as Dovecot does, so a damaged file never
 * stops a mailbox from opening.
 *
 * Keywords are compared ASCII case-insensitively (RFC 9051 2.3.2: flag
 * and keyword names are case-insensitive); the first spelling stored
 * wins. Writing the file is the caller's job: Dovecot's dotlock protocol
 * (store/maildir_dotlock.h) with "dovecot-keywords" (stale after 120 s).
 *
 * Pure code, no allocation: the table is a fixed 26 slots. Any thread.
 * Limits: MAILDIR_KEYWORDS_MAX (26), MAILDIR_KEYWORD_BYTES_MAX per name.
 */
#ifndef TOASTER_STORE_MAILDIR_KEYWORDS_H
#define TOASTER_STORE_MAILDIR_KEYWORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/maildir_name.h"

#define MAILDIR_KEYWORD_BYTES_MAX 128
/* Longest serialized file: 26 lines of "25 " + name + "\n". */
#define MAILDIR_KEYWORDS_FILE_BYTES_MAX (MAILDIR_KEYWORDS_MAX * (MAILDIR_KEYWORD_BYTES_MAX + 4))
#define MAILDIR_KEYWORDS_FILE_NAME "dovecot-keywords"

struct maildir_keywords {
    uint32_t used;      /* bit i set: names[i] holds a keyword */
    uint8_t  lens[MAILDIR_KEYWORDS_MAX];
    char     names[MAILDIR_KEYWORDS_MAX][MAILDIR_KEYWORD_BYTES_MAX + 1];
};

/* Empties the table. */
void maildir_keywords_init(struct maildir_keywords *kw);

/* Replaces the table with the contents of a dovecot-keywords file. Always
 * returns 0; *skipped_out (if not NULL) counts lines that were ignored. A
 * last line without "\n" is accepted. */
int maildir_keywords_parse(struct maildir_keywords *kw, const char *buf, size_t len,
                           size_t *skipped_out);

/* True if name[0..len) is a valid keyword atom (RFC 9051 flag-keyword:
 * atom chars, no '\', 1..MAILDIR_KEYWORD_BYTES_MAX bytes). */
bool maildir_keywords_is_valid(const char *name, size_t len);

/* Returns the index 0..25 of the keyword (case-insensitive), or -ENOENT. */
int maildir_keywords_lookup(const struct maildir_keywords *kw, const char *name, size_t len);

/* Looks the keyword up and, if missing, stores it at the first free index.
 * Returns the index, -EINVAL (not a valid keyword) or -ENOSPC (all 26
 * letters used: the caller keeps the keyword in its own index only, as
 * Dovecot does). */
int maildir_keywords_add(struct maildir_keywords *kw, const char *name, size_t len);

/* Name stored at index, or NULL. */
const char *maildir_keywords_name(const struct maildir_keywords *kw, unsigned index);

/* Writes the file contents into out (not NUL-terminated) and sets
 * *len_out. Returns 0 or -ENOBUFS; out_bytes of
 * MAILDIR_KEYWORDS_FILE_BYTES_MAX always suffices. */
int maildir_keywords_serialize(const struct maildir_keywords *kw, char *out, size_t out_bytes,
                               size_t *len_out);

#endif
