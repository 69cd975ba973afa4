/*
 * store/maildir_dotlock.h - Dovecot's dotlock protocol for the small files
 * it rewrites whole (dovecot-uidlist, dovecot-keywords, subscriptions):
 *
 *   1. create "<file>.lock" with O_EXCL (mode 0600): that is the lock;
 *   2. write the new contents into it and fsync it;
 *   3. rename it over "<file>" (atomic replace, which also unlocks) and
 *      fsync the directory.
 *
 * Giving up deletes the lock file. A lock whose mtime is more than
 * stale_s seconds old belongs to a writer that died and may be removed
 * (Dovecot: 120 s for dovecot-uidlist and dovecot-keywords, 30 s for
 * subscriptions). Dovecot writes the same way, so both can share a
 * Maildir during a migration.
 *
 * Blocking file I/O: worker threads only. No allocation.
 */
#ifndef TOASTER_STORE_MAILDIR_DOTLOCK_H
#define TOASTER_STORE_MAILDIR_DOTLOCK_H

#include <stddef.h>
#include <time.h>

#define MAILDIR_DOTLOCK_NAME_BYTES_MAX 64

/* Stale timeouts Dovecot 2.3 uses. */
#define MAILDIR_DOTLOCK_UIDLIST_STALE_S 120
#define MAILDIR_DOTLOCK_KEYWORDS_STALE_S 120
#define MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S 30

/* Creates dir_fd/<file_name>.lock. A lock not modified for more than
 * stale_s seconds at `now` is removed and taken. Returns 0 and sets
 * *lock_fd_out, -EAGAIN (held by someone else: retry later),
 * -ENAMETOOLONG, or another -errno. */
int maildir_dotlock_take(int dir_fd, const char *file_name, int stale_s, time_t now,
                         int *lock_fd_out);

/* Writes buf into the lock, fsyncs it, renames it over file_name and
 * fsyncs the directory. lock_fd is closed in every case; on failure the
 * lock file is removed. Returns 0 or -errno. */
int maildir_dotlock_replace(int dir_fd, const char *file_name, int lock_fd, const char *buf,
                            size_t len);

/* Gives the lock up: closes lock_fd and removes the lock file. Returns 0
 * or -errno. */
int maildir_dotlock_release(int dir_fd, const char *file_name, int lock_fd);

#endif
