/*
 * store/maildir_add.h - put one message into a Maildir folder outside of
 * SMTP delivery: IMAP APPEND, COPY and MOVE, and the delivery agent's
 * bounces to local senders.
 *
 * The message gets a Dovecot-style unique name
 * (<secs>.M<usecs>P<pid>Q<n>.<host>,S=<size>,W=<size>) and lands in cur/
 * with its flags (":2,<letters>"), hard-linked from its source when the
 * file system allows (COPY never duplicates bytes), else copied by the
 * kernel (copy_file_range) into tmp/ and renamed. A file is never visible
 * half-written. The folder's cur/ is synced once per batch with
 * maildir_add_sync(), before the client hears OK.
 *
 * Blocking file I/O: worker threads only.
 */
#ifndef TOASTER_STORE_MAILDIR_ADD_H
#define TOASTER_STORE_MAILDIR_ADD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/maildir_name.h"

/* Where the message comes from: exactly one of path, fd (>= 0) or bytes. */
struct maildir_add_source {
    const char *path;  /* an existing message file (COPY) */
    int fd;            /* an open file, e.g. O_TMPFILE (APPEND), or -1 */
    const char *bytes; /* the message itself (a small APPEND), or NULL */
    uint64_t size;     /* bytes of the message */
};

/* Add the message to folder (a Maildir root or .Sub directory) as
 * cur/<base>:2,<flags><keywords>. mtime > 0 sets the file's modification
 * time (IMAP INTERNALDATE) when the file is new (not for a hard link,
 * which shares its source's). A written copy is fdatasynced; the directory
 * is not (maildir_add_sync). The file's name (in cur/) goes to name_out.
 * Returns 0 or -errno (nothing is left behind on failure). */
int maildir_add(const char *folder, const struct maildir_add_source *source, uint32_t flags,
                uint32_t keywords, int64_t mtime, char *name_out, size_t name_bytes);

/* As maildir_add, for mail delivered outside of SMTP (the delivery
 * agent's bounces to our own users): into new/ as <base>, no flags, the
 * source's own time. */
int maildir_add_new(const char *folder, const struct maildir_add_source *source, char *name_out,
                    size_t name_bytes);

/* fsync the folder's cur/ (after a batch of maildir_add) or new/ (after
 * maildir_add_new). Returns 0 or -errno. */
int maildir_add_sync(const char *folder);
int maildir_add_sync_new(const char *folder);

#endif
