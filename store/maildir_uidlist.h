/*
 * store/maildir_uidlist.h - Dovecot's dovecot-uidlist file: the IMAP UIDs
 * of a Maildir's messages, keyed by base file name, and the mailbox's
 * UIDVALIDITY, next UID and GUID.
 *
 * Version 3 (written by Dovecot 1.1 .. 2.3; verified with 2.3.19.1):
 *
 *   3 V<uidvalidity> N<next uid> G<mailbox guid, 32 hex>\n
 *   <uid> [<ext key><value> ...] :<base file name>\n
 *
 * Header and record extension keys are one letter followed by the value,
 * separated by one space. Record keys are 'A'..'Z' (Dovecot: S physical
 * size, W virtual size, both only when the name lacks ,S= / ,W=; P POP3
 * UIDL; O POP3 order; G message GUID). Unknown keys are kept and written
 * back unchanged. The file name is everything after " :" to the end of
 * the line: the base name, ",S=" and ",W=" included, without ":2,<flags>".
 * UIDs strictly increase. Dovecot appends records without rewriting the
 * header, so N can be lower than the last UID + 1: the next UID is the
 * larger of the two (next_uid below), while the header's own N is kept
 * (header_next_uid) so an unchanged list serializes to the same bytes.
 *
 * Versions 1 ("1 <uidvalidity> <next uid>" / "<uid> <name>") and 2 (as 1,
 * records "<uid> <flags> <name>") are accepted on read; we always write 3.
 *
 * Locking (Dovecot's dotlock): the writer creates dovecot-uidlist.lock with
 * O_EXCL, writes the new contents into it, fsyncs it and renames it over
 * dovecot-uidlist. A lock not modified for MAILDIR_UIDLIST_LOCK_STALE_S
 * (Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT, 2 minutes) may be
 * overridden.
 *
 * Parsing allocates (this is load time): one array of records, one hash
 * index, one allocation per record; everything is bounded by the file
 * size and MAILDIR_UIDLIST_RECORDS_MAX. Lock/commit do blocking I/O and
 * belong on a worker thread. One owner per struct maildir_uidlist; not
 * thread-safe.
 */
#ifndef TOASTER_STORE_MAILDIR_UIDLIST_H
#define TOASTER_STORE_MAILDIR_UIDLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/span.h"

#define MAILDIR_UIDLIST_NAME "dovecot-uidlist"
#define MAILDIR_UIDLIST_LOCK_NAME "dovecot-uidlist.lock"
#define MAILDIR_UIDLIST_LOCK_STALE_S 120
#define MAILDIR_UIDLIST_LINE_BYTES_MAX 4096
#define MAILDIR_UIDLIST_RECORDS_MAX (UINT32_C(1) << 24)
#define MAILDIR_UIDLIST_HDR_KEYS_MAX 16
#define MAILDIR_UIDLIST_HDR_VALUE_BYTES_MAX 127

struct maildir_uidlist_rec {
    uint32_t uid;
    uint32_t name_len; /* bytes of name */
    uint32_t base_len; /* bytes of name before any ':' (the lookup key) */
    uint32_t ext_len;  /* bytes of ext */
    char    *name;     /* NUL-terminated; ext follows in the same block */
    char    *ext;      /* "W1234 G..." as in the file, NUL-terminated */
    bool     is_removed;
};

struct maildir_uidlist_hdr_key {
    char key;
    char value[MAILDIR_UIDLIST_HDR_VALUE_BYTES_MAX + 1]; /* raw, for keys other than V, N */
};

struct maildir_uidlist {
    unsigned version_read; /* 1, 2 or 3; 3 for a new list */
    uint32_t uidvalidity;
    uint32_t next_uid;        /* the UID the next append gets */
    uint32_t header_next_uid; /* N as read; written unless is_changed */
    bool     is_changed;      /* append/remove since parse */
    size_t   hdr_key_count;
    struct maildir_uidlist_hdr_key hdr_keys[MAILDIR_UIDLIST_HDR_KEYS_MAX]; /* file order */

    struct maildir_uidlist_rec *recs; /* increasing uid */
    size_t    rec_count;              /* including removed ones */
    size_t    rec_capacity;
    size_t    live_count;
    uint32_t *slots; /* hash of base name -> rec index + 1; 0 is empty */
    size_t    slot_count;
};

/* A new, empty list for a new mailbox: version 3, next UID 1, the given
 * UIDVALIDITY (see maildir_uidlist_uidvalidity_next()) and mailbox GUID
 * (32 lower-case hex digits; NULL makes a random one). Returns 0, -EINVAL
 * (uidvalidity 0 or a bad guid) or -EIO (no randomness). */
int maildir_uidlist_init_new(struct maildir_uidlist *list, uint32_t uidvalidity,
                             const char *guid_hex);

/* Parses a whole dovecot-uidlist buffer into *list (which the caller later
 * frees with maildir_uidlist_free(), also after an error). Returns 0,
 * -EINVAL for a file Dovecot would call corrupted (bad header, bad line,
 * UIDs not increasing, a name listed twice) with *line_out (if not NULL)
 * set to the 1-based line number, -E2BIG for a line over
 * MAILDIR_UIDLIST_LINE_BYTES_MAX or more than MAILDIR_UIDLIST_RECORDS_MAX
 * records, or -ENOMEM. */
int maildir_uidlist_parse(struct maildir_uidlist *list, const char *buf, size_t len,
                          size_t *line_out);

void maildir_uidlist_free(struct maildir_uidlist *list);

/* Records returned by the lookups are valid until the next append or
 * remove. */

/* The record whose base name (the part before ':', so a full file name
 * works too) equals name[0..len), or NULL. */
const struct maildir_uidlist_rec *maildir_uidlist_lookup(const struct maildir_uidlist *list,
                                                         const char *name, size_t len);

/* The record with this UID, or NULL. */
const struct maildir_uidlist_rec *maildir_uidlist_lookup_uid(const struct maildir_uidlist *list,
                                                             uint32_t uid);

/* Value of extension key ('A'..'Z') of a record, if present. */
bool maildir_uidlist_rec_ext(const struct maildir_uidlist_rec *rec, char key,
                             struct span *value_out);

/* Gives base name[0..len) (anything from ':' on is dropped) the next UID.
 * ext is "" or extension tokens ("W1234"), each 'A'..'Z' + value, single
 * spaces. Returns 0 and sets *uid_out, -EEXIST (the name has a UID; *uid_out
 * is set to it), -EINVAL (empty, '\n', NUL or a bad ext), -EOVERFLOW (UIDs
 * exhausted: the mailbox needs a new UIDVALIDITY), -E2BIG, or -ENOMEM. */
int maildir_uidlist_append(struct maildir_uidlist *list, const char *name, size_t len,
                           const char *ext, uint32_t *uid_out);

/* Drops the record with this UID (expunge). Returns 0 or -ENOENT. UIDs are
 * never reused: next_uid does not go down. */
int maildir_uidlist_remove(struct maildir_uidlist *list, uint32_t uid);

/* An upper bound on the file's bytes; maildir_uidlist_serialize() needs a
 * buffer one byte larger (it builds with snprintf, which ends in a NUL). */
size_t maildir_uidlist_serialized_bytes(const struct maildir_uidlist *list);

/* Writes the file as version 3. Returns 0 and sets *len_out, or -ENOBUFS. */
int maildir_uidlist_serialize(const struct maildir_uidlist *list, char *out, size_t out_bytes,
                              size_t *len_out);

/* UIDVALIDITY for a new mailbox, as Dovecot picks it: the current time, or
 * last + 1 if that is not larger than the last one handed out (Dovecot
 * keeps the last one in <root>/dovecot-uidvalidity as 8 hex digits).
 * Never 0. */
uint32_t maildir_uidlist_uidvalidity_next(uint32_t last, time_t now);

/* <root>/dovecot-uidvalidity holds the last UIDVALIDITY handed out, as 8
 * lower-case hex digits without a newline ("6b0a5e7d"; Dovecot 2.3 also
 * keeps an empty marker file dovecot-uidvalidity.<same hex>). Parse
 * returns 0 and sets *value_out, or -EINVAL; format writes 8 digits and a
 * NUL into out (out_bytes >= 9) and returns 8. */
int maildir_uidlist_uidvalidity_file_parse(const char *buf, size_t len, uint32_t *value_out);
int maildir_uidlist_uidvalidity_file_format(uint32_t value, char *out, size_t out_bytes);

/* Takes the lock: creates dir/dovecot-uidlist.lock with O_EXCL (mode
 * 0600). A lock older than MAILDIR_UIDLIST_LOCK_STALE_S seconds at `now`
 * is removed and taken. Returns 0 and sets *lock_fd_out, -EAGAIN (locked
 * by someone else: retry later) or another -errno. */
int maildir_uidlist_lock(int dir_fd, time_t now, int *lock_fd_out);

/* Writes buf into the lock file, fsyncs it, renames it over
 * dovecot-uidlist and fsyncs the directory. The lock is released (closed)
 * on success and on failure (the lock file is then removed). Returns 0 or
 * -errno. */
int maildir_uidlist_commit(int dir_fd, int lock_fd, const char *buf, size_t len);

/* Gives the lock up without writing: closes lock_fd and removes the lock
 * file. Returns 0 or -errno. */
int maildir_uidlist_unlock(int dir_fd, int lock_fd);

#endif
