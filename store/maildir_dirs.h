/*
 * store/maildir_dirs.h - the committer's open new/ directories.
 *
 * Delivering a message means one link into <Maildir>/new and, once per
 * batch, one fsync of that directory. Opening the directory by path for
 * each of those costs a path walk plus open and close every time; this
 * table keeps the new/ directories of recently used mailboxes open, so a
 * delivery is one linkat(2) and a batch's directory syncs need no open at
 * all. A missing Maildir is created (durably) on first use.
 *
 * An entry is reopened by path when it is older than a second, and at
 * once when the kernel says the directory is gone (a link into a removed
 * directory fails with ENOENT), so an operator who moves or deletes a
 * Maildir is followed within a second. Used by the committer thread only.
 */
#ifndef TOASTER_STORE_MAILDIR_DIRS_H
#define TOASTER_STORE_MAILDIR_DIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries kept between batches; more are closed at the next trim. */
#define MAILDIR_DIRS_KEEP 1024
/* Slots in the table (a power of two). Between two trims it must hold the
 * kept entries plus one batch's distinct mailboxes at most half full. */
#define MAILDIR_DIRS_SLOTS 32768

struct maildir_dir {
    char    *mailbox;    /* "local@domain", owned; NULL = free slot */
    int      new_fd;     /* O_DIRECTORY fd of <Maildir>/new, or -1 */
    uint64_t opened_ns;  /* CLOCK_MONOTONIC when new_fd was opened */
    /* For the committer's batch bookkeeping: */
    uint64_t batch_mark; /* last batch that used this directory */
    int      sync_result;
};

/* Start with an empty table. data_dir is copied. Returns 0 or -errno. */
int maildir_dirs_init(const char *data_dir, bool is_fsync_on);

/* The open new/ directory of mailbox, created when missing. The pointer
 * stays valid until the next maildir_dirs_trim(). An entry already marked
 * with this batch keeps its fd (the batch syncs what it linked into).
 * Returns 0 or -errno (-ENAMETOOLONG, -ENOMEM, -EMFILE, or what mkdir or
 * open said). */
int maildir_dirs_get(const char *mailbox, uint64_t batch, struct maildir_dir **dir_out);

/* The directory behind dir vanished or misbehaved: the next get reopens it
 * by path. */
void maildir_dirs_forget(struct maildir_dir *dir);

/* <data_dir>/mail/<domain>/<local>/Maildir of mailbox. Returns 0 or -errno. */
int maildir_dirs_path(const char *mailbox, char *path_out, size_t path_bytes);

/* Between batches: close everything past MAILDIR_DIRS_KEEP entries. */
void maildir_dirs_trim(void);

/* Close every directory and free the table. */
void maildir_dirs_destroy(void);

#endif
