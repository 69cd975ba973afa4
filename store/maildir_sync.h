/*
 * store/maildir_sync.h - bring one Maildir folder's message list up to date
 * with its files, the way Dovecot 2.3 does, so UIDs stay the same whether
 * toasterd or Dovecot looks at the folder.
 *
 * One sync: take the dovecot-uidlist dotlock, read dovecot-uidlist (a
 * missing file is a new mailbox) and dovecot-keywords, scan new/ then cur/
 * (new/ first, as Dovecot does, so a file moved new/ -> cur/ during the
 * scan is seen at least once; a base name in both is kept as the cur/ one),
 * give unknown files the next UIDs in Dovecot's file-name order (time part
 * numerically, then bytes), drop records whose file is gone, optionally
 * move new/ files to cur/ with ":2,", write the list back if it changed,
 * release the lock.
 *
 * Blocking file I/O and allocation: worker threads only, never a reactor.
 * Limits: MAILDIR_SYNC_MESSAGES_MAX files per folder.
 */
#ifndef TOASTER_STORE_MAILDIR_SYNC_H
#define TOASTER_STORE_MAILDIR_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/maildir_keywords.h"

#define MAILDIR_SYNC_MESSAGES_MAX (UINT32_C(1) << 20)

struct maildir_sync_opts {
    /* IMAP SELECT: rename new/<name> to cur/<name>:2, (a name that already
     * has ":<info>" keeps it). Entries still report is_recent. */
    bool is_move_new;
    /* Directory holding dovecot-uidvalidity (the mail root; for a .Sub
     * folder its parent). Used only for a new mailbox, and updated then as
     * Dovecot does. NULL: UIDVALIDITY is the current time. */
    const char *uidvalidity_root;
    /* Clock for the stale-lock test and a new UIDVALIDITY; 0 = time(NULL). */
    time_t now;
    /* Files per folder; 0 or anything above MAILDIR_SYNC_MESSAGES_MAX
     * means MAILDIR_SYNC_MESSAGES_MAX. Configuration may only lower it. */
    size_t messages_max;
};

struct maildir_sync_entry {
    uint32_t    uid;
    uint32_t    flags;    /* MAILDIR_FLAG_* */
    uint32_t    keywords; /* bit i = dovecot-keywords index i */
    bool        is_recent; /* was in new/ when this sync saw it */
    bool        is_in_new; /* the file is (still) in new/, else cur/ */
    bool        has_vsize;
    uint64_t    size;      /* ,S= or the uidlist's S, else stat */
    uint64_t    vsize;     /* ,W= or the uidlist's W; valid if has_vsize */
    const char *name;      /* file name inside new/ or cur/; owned by result */
};

struct maildir_sync_result {
    uint32_t uidvalidity;
    uint32_t next_uid;
    size_t   added_count;    /* records appended by this sync */
    size_t   expunged_count; /* records removed by this sync */
    bool     is_uidlist_written;
    struct maildir_keywords keywords; /* empty if no dovecot-keywords */
    struct maildir_sync_entry *entries; /* increasing uid */
    size_t   entry_count;
    char    *names; /* storage for entries[].name */
};

/* Syncs the folder at path (a Maildir root or a .Sub folder). Returns 0
 * and fills *result_out (free it with maildir_sync_result_free(), which is
 * also safe after an error), or:
 *   -EAGAIN   dovecot-uidlist.lock is held by a live writer (modified less
 *             than MAILDIR_UIDLIST_LOCK_STALE_S ago): nothing was changed,
 *             retry later. We do not wait: the caller's worker is not
 *             ours to block.
 *   -E2BIG    more than messages_max files in new/ + cur/, or a uidlist over
 *             its limits;
 *   -EINVAL   dovecot-uidlist is corrupt (left as it is for an operator);
 *   -EOVERFLOW UIDs exhausted;
 *   -ENOENT   path, new/ or cur/ is missing;
 *   -EIO / -ENOMEM / another -errno from the file system.
 * A file renamed away between readdir and its stat or rename makes the
 * scan run once more (as Dovecot does); a second race returns -EAGAIN. */
int maildir_sync_run(const char *path, const struct maildir_sync_opts *opts,
                     struct maildir_sync_result *result_out);

void maildir_sync_result_free(struct maildir_sync_result *result);

/* Give files this process has just put into cur/ (APPEND, COPY) their UIDs
 * without a scan: under the uidlist lock, when dovecot-uidlist still has
 * uidvalidity and next_uid as the caller last saw them, append names[i]
 * (file names; the base before ':' is recorded) and write the list back.
 * Returns 0 with uids_out[i], -ESTALE when the list changed meanwhile (the
 * caller runs maildir_sync_run instead), -EAGAIN (locked), or -errno.
 * Worker threads only. */
int maildir_sync_add(const char *path, const char *const *names, size_t count, uint32_t uidvalidity,
                     uint32_t next_uid, uint32_t *uids_out);

#endif
