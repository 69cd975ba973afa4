/*
 * store/maildir_watch.h - hearing of changes other programs make in a
 * loaded Maildir folder (a delivery agent writing new/, another IMAP
 * server renaming files in cur/) the moment they happen: inotify on the
 * folder's new/ and cur/, read by one thread of its own, which calls
 * changed(folder_path) once the folder's events have settled (50 ms after
 * the first), and again 50 ms later while changed() answers false (busy
 * with a change of our own). Our own changes are reported too: the
 * callback tells them apart (mailbox_index_changed_outside).
 *
 * Bounded by the kernel's fs.inotify.max_user_watches: beyond it a folder
 * is not watched (logged once) and its changes are seen at the next
 * command, as without the watcher. Any thread.
 */
#ifndef TOASTER_STORE_MAILDIR_WATCH_H
#define TOASTER_STORE_MAILDIR_WATCH_H

#include <stdbool.h>

/* The two watch descriptors of one folder (-1: none). */
struct maildir_watch_handle {
    int wd_new;
    int wd_cur;
};

/* Start the watcher thread. Returns 0 or -errno (nothing started). */
int maildir_watch_start(bool (*changed)(const char *folder_path));

/* Stop it and drop every watch. */
void maildir_watch_stop(void);

/* Watch folder_path/new and folder_path/cur (path copied). A no-op
 * (handle set to -1) when the watcher is not running or the kernel
 * refuses; returns 0 or -errno for the caller's log. */
int maildir_watch_add(const char *folder_path, struct maildir_watch_handle *handle);

/* Stop watching; the handle is reset. Safe on a reset handle. */
void maildir_watch_remove(struct maildir_watch_handle *handle);

#endif
