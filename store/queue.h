/*
 * store/queue.h - the outbound queue on disk: mail for remote recipients,
 * kept durably under <data_dir>/queue/ until the delivery agent (issue 8)
 * has sent it.
 *
 * One queued message is one file, sometimes two, named by its queue id
 * (16 upper-case hex digits, the id of its SMTP transaction):
 *
 *   <id>.msg   the message bytes, exactly as received: a hard link to the
 *              synced spool file (a copy where links cannot serve). It
 *              starts with the Return-Path line of local delivery, which
 *              the delivery agent drops before sending (RFC 5321 4.4: a
 *              relay does not add Return-Path). Its bytes never change.
 *   envelope   the line-based text below, in one of two places:
 *              - the extended attribute "user.toaster.env" of <id>.msg,
 *                set before the file is linked into the queue and
 *                replaced in place (one fsetxattr, atomic for readers)
 *                when a recipient's state changes. Used when no mailbox
 *                links the same file (an envelope there would show other
 *                recipients to that mailbox's owner) and the text fits
 *                QUEUE_XATTR_BYTES_MAX: one inode per entry, which is
 *                what makes and deletes per relayed message cost.
 *              - otherwise <id>.env, written to "<id>.env.tmp", fsynced,
 *                renamed into place, rewritten the same way. An envelope
 *                that outgrows the attribute moves to <id>.env for good
 *                (the attribute is then removed; a file wins over it).
 *
 * A queue entry exists when, and only when, <id>.env exists or <id>.msg
 * carries the attribute; <id>.msg is always made before <id>.env, and an
 * attribute is set before its file gets the <id>.msg name. Names ending in
 * ".tmp" are never an entry: a crash may leave them behind, and
 * queue_scan() removes them at start-up, together with a <id>.msg that
 * has no envelope (it was never acknowledged). An envelope that fails
 * validation is reported and left where it is, never deleted.
 *
 * Envelope format, versions 1 and 2. Lines end in LF; fields are separated by one
 * space; addresses and other client-supplied words are xtext (RFC 3461:
 * bytes outside '!'..'~', '+' and '=' as "+XX"), so a field never holds a
 * space or a control byte. The first line is the version; "end" is the
 * last line, so a truncated file is refused. Each key appears once, in
 * this order, then one "rcpt" line per recipient (at least one):
 *
 *   toaster-queue 1
 *   id 14CB8BFEB7900000
 *   arrival 1733900000                 unix seconds when accepted
 *   size 1234                          bytes of <id>.msg
 *   from <alice@example.com>           envelope sender, xtext in <>; "<>" for the null sender
 *   ret full|hdrs|-                    DSN RET (RFC 3461), "-" when not given
 *   envid <xtext>|-                    DSN ENVID, "-" when not given
 *   user <xtext>|-                     the authenticated user who sent it, "-" for none
 *   hold <since> [<reason>]            version 2 only, optional: the entry is held
 *   warned <when>                      version 2 only, optional: the delay warning went
 *   rcpt <state> <attempts> <next> <address> <orcpt> <notify>[ <last reply>]
 *   end
 *
 * In a rcpt line: state is pending, delivered or failed; attempts the
 * delivery attempts so far; next the unix second of the next attempt (0:
 * at once); address the recipient (xtext in <>); orcpt the original
 * recipient as RFC 3461 "addr-type;xtext" (given by the client, or the
 * alias the address came from) or "-"; notify "-" or a comma list of
 * NEVER, SUCCESS, FAILURE, DELAY; last reply the rest of the line, the
 * remote server's last answer as text (control bytes turned into spaces).
 *
 * Hold (Postfix's hold queue): a held entry is kept but never delivered
 * until an operator releases it. "since" is the unix second it was held,
 * the reason is free text (control bytes turned into spaces, at most
 * QUEUE_HOLD_REASON_BYTES - 1 bytes), possibly empty. Version 2 is version
 * 1 plus that one optional line. An entry is written as version 1 when it
 * is not held (byte for byte what older toasters wrote, so a downgrade
 * keeps reading it) and as version 2 when it is held (an older toaster
 * then refuses the envelope and leaves it alone, instead of delivering
 * mail that was held). Both versions are read; a "hold" line in a version
 * 1 file is refused.
 *
 * Warned: "when" is the unix second (> 0) the one delay warning (RFC 3464
 * "delayed" DSN) for this entry was queued, so a restart never sends a
 * second one. Version 2 only, like hold, and after the hold line when
 * both are there. An entry with neither line is still written as version
 * 1; a "warned" line in a version 1 file is refused, and so is one out of
 * order (twice, before "hold", after a "rcpt").
 *
 * Locking: whoever changes an existing entry (the delivery agent updating
 * recipient states, toasterctl holding, releasing, flushing or deleting)
 * holds the entry's lock across load, change and write:
 * queue_entry_lock() takes flock(LOCK_EX) on <id>.msg, the one file of an
 * entry whose inode never changes (an envelope file is replaced by rename,
 * so a lock on it would be lost at the first update). queue_entry_update()
 * and queue_entry_remove() expect the caller to hold that lock; they share
 * the "<id>.env.tmp" name, so two writers without it would trample each
 * other. queue_entry_edit() does the whole locked sequence. A reader that
 * only looks (toasterctl queue list/show) takes no lock: every envelope it
 * can read is a complete one, thanks to the rename or the one fsetxattr. The committer needs no
 * lock: nobody else knows the id before publish. Locks are advisory and
 * vanish with the process that held them, so a crash leaves none behind.
 * toasterctl tells a running daemon only of a flush, so whatever the
 * delivery agent keeps in memory may be stale: before each attempt it
 * takes the lock and loads the envelope again, skips the entry if it is
 * held, and forgets it if it is gone (-ENOENT).
 *
 * Runs on whichever thread calls it (the committer, the delivery agent's
 * workers, toasterctl, tests); every call may block on disk.
 * Limits: QUEUE_RCPTS_MAX recipients per entry, QUEUE_LINE_BYTES_MAX per
 * envelope line, QUEUE_REPLY_BYTES per reply.
 */
#ifndef TOASTER_STORE_QUEUE_H
#define TOASTER_STORE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "store/spool.h"

#define QUEUE_VERSION 2            /* the newest version written (held or warned) */
#define QUEUE_VERSION_PLAIN 1      /* written when neither held nor warned */
#define QUEUE_RCPTS_MAX 1000      /* remote recipients per message (as Postfix's default) */
#define QUEUE_LINE_BYTES_MAX 8192 /* one envelope line, LF included */
/* The largest envelope kept as an attribute: ext4 holds all of an inode's
 * attributes in one block (4 KiB), with room left for others'. */
#define QUEUE_XATTR_BYTES_MAX 3072
#define QUEUE_REPLY_BYTES 513     /* last reply kept per recipient, NUL included */
#define QUEUE_ORCPT_BYTES 1024    /* "rfc822;xtext", NUL included */
#define QUEUE_ENVID_BYTES 101     /* RFC 3461: 100 characters, NUL included */
#define QUEUE_USER_BYTES 256
#define QUEUE_ERROR_BYTES 256
#define QUEUE_HOLD_REASON_BYTES 256 /* NUL included */

/* DSN notify bits, the same values as proto/smtp's SMTP_NOTIFY_*. */
#define QUEUE_NOTIFY_NEVER 0x1u
#define QUEUE_NOTIFY_SUCCESS 0x2u
#define QUEUE_NOTIFY_FAILURE 0x4u
#define QUEUE_NOTIFY_DELAY 0x8u

enum queue_ret { QUEUE_RET_UNSPECIFIED, QUEUE_RET_FULL, QUEUE_RET_HDRS };
enum queue_rcpt_state { QUEUE_RCPT_PENDING, QUEUE_RCPT_DELIVERED, QUEUE_RCPT_FAILED };

/* One recipient. The strings are borrowed: from the caller when writing,
 * from the entry's own storage after queue_entry_load(). */
struct queue_rcpt {
    const char           *address;    /* "user@domain" as in RCPT TO, never empty */
    const char           *orcpt;      /* "rfc822;xtext" or "" */
    uint32_t              notify;     /* QUEUE_NOTIFY_* bits, 0 when not given */
    enum queue_rcpt_state state;
    uint32_t              attempts;
    int64_t               next_attempt; /* unix seconds; 0 = now */
    const char           *last_reply;   /* "" when none */
};

struct queue_entry {
    char               id[SPOOL_QUEUE_ID_BYTES];
    int64_t            arrival;   /* unix seconds */
    uint64_t           size;      /* bytes of the message file */
    char               mail_from[SMTP_ADDRESS_BYTES_MAX + 1]; /* "" for <> */
    enum queue_ret     ret;
    char               envid[QUEUE_ENVID_BYTES]; /* decoded; "" when not given */
    char               user[QUEUE_USER_BYTES];   /* "" when not authenticated */
    bool               is_held;                  /* not delivered until released */
    int64_t            held_since;               /* unix seconds; 0 when not held */
    char               hold_reason[QUEUE_HOLD_REASON_BYTES]; /* "" when none */
    int64_t            warned_at;                /* unix seconds; 0 = no delay warning yet */
    struct queue_rcpt *rcpts;
    size_t             rcpt_count;
    /* Owned by queue_entry_load() (NULL otherwise); freed by
     * queue_entry_release(). */
    char              *storage;
    struct queue_rcpt *rcpt_storage;
};

/* Where the message bytes come from: the spool file. An unnamed
 * (O_TMPFILE) file is linked through /proc/self/fd; a named one by its
 * name in dir_fd. */
struct queue_source {
    int         fd;       /* open, readable, complete, its data synced */
    bool        is_unnamed;
    int         dir_fd;   /* for a named file */
    const char *name;     /* for a named file */
    /* No mailbox links this file (nor will): the envelope may ride on it
     * as its attribute. False keeps it in its own <id>.env file. */
    bool        is_exclusive;
};

/* An envelope between queue_entry_stage() and queue_entry_publish(). */
struct queue_staged {
    int  fd;            /* what to fsync (not fdatasync: an attribute is
                         * metadata): the source file or "<id>.env.tmp" */
    bool is_on_message; /* the attribute of the source file */
};

struct queue; /* the directory; opaque */

/* Create <data_dir>/queue if missing and open it. is_fsync_on false (tests
 * on tmpfs only) skips every fsync. Returns 0 and sets *queue_out, or
 * -errno. */
int queue_open(const char *data_dir, bool is_fsync_on, struct queue **queue_out);

/* Close and NULL the pointer. Safe with NULL. */
void queue_close(struct queue **queue);

/* The directory's fd, for a caller that syncs it together with others. */
int queue_dir_fd(const struct queue *queue);

/* Whether an id is a queue id (16 upper-case hex digits): names from
 * outside (a file name, toasterctl's argument) are checked with it. */
bool queue_id_is_valid(const char *id);

/* Step 1 of making an entry durable: check it (every bound, at least one
 * recipient, a valid id) and write its envelope: as the attribute of
 * source->fd when the source is exclusive and the text fits (and the file
 * system has user attributes), else to "<id>.env.tmp". Returns 0 and
 * *staged_out, whose fd the caller fsyncs (many at once, if it likes)
 * before queue_entry_publish(); or -EINVAL (entry out of bounds; logged),
 * -EEXIST, or -errno. */
int queue_entry_stage(struct queue *queue, const struct queue_entry *entry,
                      const struct queue_source *source, struct queue_staged *staged_out);

/* Step 2: link (or copy, with its attribute) the message into "<id>.msg",
 * then rename a synced envelope file into "<id>.env" and close it. The
 * entry is durable once the caller has synced the directory
 * (queue_dir_fd). On failure nothing of the entry is left (the stage is
 * undone). Returns 0 or -errno (-EEXIST: the id is taken). */
int queue_entry_publish(struct queue *queue, const char *id, const struct queue_source *source,
                        struct queue_staged *staged);

/* Abandon a staged envelope (its publish will not happen): removes the
 * attribute, or closes and removes the temporary file. */
void queue_entry_unstage(struct queue *queue, const char *id, struct queue_staged *staged);

/* Stage, sync, publish and sync the directory: one entry made durable
 * alone. Returns 0 or -errno. */
int queue_entry_store(struct queue *queue, const struct queue_entry *entry,
                      const struct queue_source *source);

/* Rewrite the envelope of an existing entry (recipient states changed):
 * the attribute replaced and the file fsynced; or temporary file, fsync,
 * rename, directory fsync (an envelope file, or one grown past the
 * attribute's bound). The caller holds the
 * entry's lock (queue_entry_lock). Returns 0 or -errno. */
int queue_entry_update(struct queue *queue, const struct queue_entry *entry);

/* Remove an entry: an envelope file first, so a crash in between leaves
 * only a message file that the next start-up removes; then <id>.msg. The caller holds the
 * entry's lock, or is the committer undoing its own fresh entry. Returns 0
 * or -errno (-ENOENT when neither envelope nor message file was there). */
int queue_entry_remove(struct queue *queue, const char *id);

/* Remove a finished entry (every recipient delivered or bounced, the
 * bounces durable already) the same way, without syncing the directory:
 * should a crash bring it back, it is only tried again (a duplicate at
 * worst, as with Postfix, which does not sync a removal either), and each
 * delivery is spared a journal commit. Returns as queue_entry_remove. */
int queue_entry_retire(struct queue *queue, const char *id);

/* Take the entry's lock (flock LOCK_EX on <id>.msg; see "Locking" above).
 * With is_waiting false, returns -EWOULDBLOCK at once when someone else
 * holds it; with is_waiting true, blocks until it is free. Returns 0 and
 * the lock's fd in *lock_fd_out, -ENOENT when there is no such entry (or
 * it was removed while we waited), -EINVAL for a bad id, or -errno. */
int queue_entry_lock(struct queue *queue, const char *id, bool is_waiting, int *lock_fd_out);

/* Let go of a lock from queue_entry_lock: closes the fd and sets it to -1.
 * Safe with -1. */
void queue_entry_unlock(int *lock_fd);

enum queue_edit {
    QUEUE_EDIT_HOLD,    /* mark held, since now, with a reason */
    QUEUE_EDIT_RELEASE, /* clear the hold */
    QUEUE_EDIT_FLUSH,   /* next attempt 0 (at once) for every pending recipient */
    QUEUE_EDIT_DELETE,  /* remove the entry (envelope, then message) */
};

/* One operator's change to an entry, under its lock (waiting for it):
 * load, change, rewrite atomically (queue_entry_update) or remove. A
 * delete does not need a readable envelope, so a malformed entry can be
 * deleted by hand. now is the hold time (unix seconds); reason (may be
 * NULL) the hold's text. Returns 0 when the entry changed, 1 when it was
 * already so (held, not held, nothing pending to hurry: nothing written),
 * -ENOENT, -EBADMSG (reason in err), or -errno. */
int queue_entry_edit(struct queue *queue, const char *id, enum queue_edit edit, int64_t now,
                     const char *reason, char *err, size_t err_bytes);

/* Read an entry. Returns 0 with *entry_out filled (release it with
 * queue_entry_release), -ENOENT when there is no such entry, -EBADMSG
 * when the envelope is malformed, fails a bound, does not match its id,
 * or its message file is missing or of another size (the reason, with
 * file and line, in err), or -errno. */
int queue_entry_load(struct queue *queue, const char *id, struct queue_entry *entry_out,
                     char *err, size_t err_bytes);

/* Free what queue_entry_load() allocated; the entry is zeroed. */
void queue_entry_release(struct queue_entry *entry);

/* Call visit(ctx, id) for every entry (each "<id>.env", and each "<id>.msg"
 * with the attribute and no "<id>.env", with a valid id, in directory order) until it returns non-zero, which is then returned. With
 * is_cleaning (start-up, before the daemon writes to the queue) it first
 * removes temporary files and message files without an envelope, each
 * logged, except those of an entry whose lock someone holds (an edit in
 * progress, e.g. toasterctl's). Other names are ignored (logged when
 * cleaning). Returns 0, visit's value, or -errno. At most QUEUE_SCAN_MAX
 * names are looked at per call. */
#define QUEUE_SCAN_MAX 10000000
int queue_scan(struct queue *queue, bool is_cleaning, int (*visit)(void *ctx, const char *id),
               void *ctx);

/* "pending", "delivered" or "failed" (the envelope's words), NULL for a
 * value out of the enum. */
const char *queue_rcpt_state_name(enum queue_rcpt_state state);

/* Free text for one envelope line (a reply, a hold reason) from src
 * (NULL: empty) into dst: control bytes become spaces, and it is cut at
 * dst_bytes - 1. Returns the length. */
size_t queue_text_clean(const char *src, char *dst, size_t dst_bytes);

/* xtext (RFC 3461) of src into dst, NUL-terminated. Returns the length, or
 * -ENAMETOOLONG when dst is too small. Exposed for tests and toasterctl. */
long queue_xtext_encode(const char *src, char *dst, size_t dst_bytes);

#endif
