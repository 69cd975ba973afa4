/*
 * store/maildir_subscriptions.h - Dovecot's "subscriptions" file in the
 * Maildir root: the mailboxes a user subscribed to (IMAP SUBSCRIBE/LSUB).
 *
 * Current format (Dovecot 2.2+, verified with 2.3.19.1 doveadm mailbox
 * subscribe): the line "V\t2", an empty line, then one mailbox per line
 * with the hierarchy separator written as a tab:
 *
 *   V\t2\n\nArchive\nArchive\t2024\nINBOX\nTr&AOQ-ume\n
 *
 * Names are the storage names Dovecot uses (modified UTF-7, as in the
 * Maildir++ folder names); converting them is the IMAP layer's job. Each
 * level is tab-escaped (\001 -> \001 '1'; tab, CR, LF, NUL -> \001 't',
 * 'r', 'n', '0'); names that would need tab, CR, LF or NUL are refused
 * here, so only \001 is ever escaped on write, and all escapes are undone
 * on read. "INBOX" in any case is stored as "INBOX", as Dovecot does. Order
 * is the order of subscription; unsubscribing keeps the order of the rest.
 * The old format (before 2.2) has no version line: one name per line with
 * the namespace's own separator; it is read (caller names the separator)
 * and always written back in the current format. As in Dovecot, a file is
 * version 2 only if it starts with the exact bytes "V\t2\n\n". Writing uses
 * store/maildir_dotlock.h with "subscriptions" (stale after 30 s).
 *
 * Names here take the caller's hierarchy separator (sep, e.g. '/' or '.');
 * internally levels are kept tab-separated, as in the file. Writing the
 * file (temp + rename, under subscriptions.lock) is the caller's job.
 *
 * Load-time allocation, bounded by MAILDIR_SUBSCRIPTIONS_MAX names of
 * MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX bytes. One owner; not thread-safe.
 */
#ifndef TOASTER_STORE_MAILDIR_SUBSCRIPTIONS_H
#define TOASTER_STORE_MAILDIR_SUBSCRIPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAILDIR_SUBSCRIPTIONS_FILE_NAME "subscriptions"
#define MAILDIR_SUBSCRIPTIONS_MAX 16384
#define MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX 1024

struct maildir_subscriptions {
    char    **names;     /* tab-separated levels, NUL-terminated; NULL = removed */
    size_t    count;     /* slots used in names, removed ones included */
    size_t    capacity;
    size_t    live_count;
    uint32_t *slots;     /* hash: names index + 1; 0 empty */
    size_t    slot_count;
    bool      was_old_format;
};

void maildir_subscriptions_init(struct maildir_subscriptions *subs);
void maildir_subscriptions_free(struct maildir_subscriptions *subs);

/* Replaces the list with a file's contents. old_sep is the separator of
 * the old (unversioned) format. Lines that are too long, contain NUL or
 * CR, or repeat a name are skipped and counted in *skipped_out (if not
 * NULL). Returns 0, -E2BIG (more than MAILDIR_SUBSCRIPTIONS_MAX names)
 * or -ENOMEM. */
int maildir_subscriptions_parse(struct maildir_subscriptions *subs, const char *buf, size_t len,
                                char old_sep, size_t *skipped_out);

/* Whether name[0..len) (levels split by sep) is subscribed. */
bool maildir_subscriptions_contains(const struct maildir_subscriptions *subs, const char *name,
                                    size_t len, char sep);

/* Subscribes. Returns 1 if added, 0 if it already was, -EINVAL (empty,
 * a tab/CR/LF/NUL inside, empty level), -ENAMETOOLONG, -E2BIG, -ENOMEM. */
int maildir_subscriptions_add(struct maildir_subscriptions *subs, const char *name, size_t len,
                              char sep);

/* Unsubscribes. Returns 0 or -ENOENT. */
int maildir_subscriptions_remove(struct maildir_subscriptions *subs, const char *name,
                                 size_t len, char sep);

/* Iteration: *pos starts at 0. Copies the next name, levels joined by sep
 * and unescaped, into out (NUL-terminated; a name Dovecot stored with an
 * escaped NUL, tab, CR or LF comes out with that byte, so check len_out). Returns 1 and advances *pos, 0 at the end, or
 * -ENOBUFS (out too small; *pos unchanged). */
int maildir_subscriptions_next(const struct maildir_subscriptions *subs, size_t *pos, char sep,
                               char *out, size_t out_bytes, size_t *len_out);

size_t maildir_subscriptions_serialized_bytes(const struct maildir_subscriptions *subs);

/* Writes the current format. Returns 0 and sets *len_out, or -ENOBUFS. */
int maildir_subscriptions_serialize(const struct maildir_subscriptions *subs, char *out,
                                    size_t out_bytes, size_t *len_out);

#endif
