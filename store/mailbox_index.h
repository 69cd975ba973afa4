/*
 * store/mailbox_index.h - the in-memory index of one Maildir folder, kept
 * once per process and shared by every IMAP session that has the folder
 * selected, and each session's view of it.
 *
 * The index holds, per message: UID, flags and keyword bits (as in the file
 * name), MODSEQ, size and the file name. It is filled and refreshed from
 * disk by store/maildir_sync (Dovecot's UIDs), and changed in memory by the
 * sessions (STORE, EXPUNGE) which then rename or unlink the files.
 *
 * Views. Sessions do not copy the message list. An expunged message stays
 * in the index as a tombstone until every view has reported it (IMAP may
 * only announce an expunge at certain moments, RFC 9051 7.5.1), and each
 * view remembers three numbers: the highest UID it has announced (EXISTS),
 * the MODSEQ up to which it has reported expunges, and the MODSEQ up to
 * which it has reported flag changes. A view's message sequence is the
 * entries with uid <= uid_last that are live or were expunged after its
 * expunge mark. A view costs a few dozen bytes, so 100,000 IDLE sessions
 * on one folder cost one index.
 *
 * MODSEQ. Every change takes the next MODSEQ of the index. The index does
 * not persist MODSEQs yet: when it is loaded, every message gets the
 * current time in microseconds as its MODSEQ, so values only grow across
 * restarts (a client's CHANGEDSINCE from before a restart then returns
 * every message, which is correct, just not minimal).
 *
 * Push. mailbox_index_changed_path() (the committer, after new mail is
 * durable) marks the folder dirty and calls every view's notify callback;
 * the session then refreshes on a worker and reports. Changes by other
 * programs are seen at the next refresh, which checks the directories'
 * modification times, and at once in folders a session holds when
 * store/maildir_watch reports them (mailbox_index_changed_outside).
 *
 * Threads. Loading and refreshing read directories: worker threads only.
 * The other calls touch memory under the index's mutex (never held across
 * I/O) and may run on a reactor. notify callbacks run under that mutex on
 * whichever thread changed the index: they must only flag and wake.
 * Limits: MAILDIR_SYNC_MESSAGES_MAX messages per folder.
 */
#ifndef TOASTER_STORE_MAILBOX_INDEX_H
#define TOASTER_STORE_MAILBOX_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/maildir_keywords.h"

struct mailbox_index;
/* A cached body text (see mailbox_index_body_text_put): immutable,
 * reference-counted, shared by the index and the snapshots. */
struct mailbox_body_text;

struct mailbox_view {
    /* Private to mailbox_index; embedded in the caller's memory. */
    struct mailbox_index *index;
    struct mailbox_view *prev;
    struct mailbox_view *next;
    void (*notify)(struct mailbox_view *view);
    void *owner;             /* for notify */
    uint64_t modseq_seen;    /* flag changes reported up to here */
    uint64_t expunge_seen;   /* expunges reported up to here */
    uint64_t own_modseq_min; /* the view's own last STORE: not echoed */
    uint64_t own_modseq_max;
    uint32_t uid_last;       /* highest UID announced */
    uint32_t exists;         /* messages in the view (EXISTS last said) */
    uint32_t recent_uid_min; /* \Recent for this view: uid >= this */
    bool is_readonly;
};

/* One message as a command sees it, copied out of the index. */
struct mailbox_message {
    uint32_t seq;
    uint32_t uid;
    uint32_t flags;    /* MAILDIR_FLAG_* */
    uint32_t keywords; /* bit i = dovecot-keywords index i */
    uint64_t modseq;
    uint64_t size;     /* bytes of the file (S=) */
    uint64_t vsize;    /* bytes with CRLF line ends (W=): RFC822.SIZE */
    int64_t mtime;     /* INTERNALDATE when known (read once), else 0 */
    bool has_vsize;    /* vsize is known, not assumed equal to size */
    bool is_nul_free;  /* the file was read and holds no NUL byte */
    bool is_recent;
    bool is_in_new;    /* file is in new/, else cur/ */
    bool is_gone;      /* expunged before a STORE reached it */
    bool is_modified;  /* STORE skipped it: MODSEQ above UNCHANGEDSINCE */
    const char *name;  /* file name in new/ or cur/, owned by the snapshot */
    uint32_t name_off; /* private: name's place in the snapshot's arena */
    /* The header block (CRLF, up to and with the blank line) when the
     * index has it cached and the snapshot asked for headers; else NULL. */
    const char *header;
    uint32_t header_len;
    uint32_t header_off; /* private */
    /* The body text when the index has it cached and the snapshot asked
     * for it (is_with_body_text; the snapshot holds a reference until
     * mailbox_snapshot_free), else NULL. */
    const struct mailbox_body_text *body_text;
    /* An earlier command found the body text over
     * MAILBOX_BODY_TEXT_BYTES_MAX: not worth making again. */
    bool is_body_text_too_large;
};

struct mailbox_snapshot {
    struct mailbox_message *messages; /* in sequence order */
    size_t count;
    char *names;
    size_t names_len;
    size_t names_cap;
    size_t capacity;
    bool is_with_headers; /* set before collecting: copy cached headers */
    bool is_with_body_text; /* set before collecting: take cached body texts */
    /* private: the body text references the snapshot holds */
    struct mailbox_body_text **body_text_refs;
    size_t body_text_ref_count;
    size_t body_text_ref_cap;
};

struct mailbox_status {
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint32_t exists;       /* live messages */
    uint32_t recent;
    uint32_t unseen;       /* messages without \Seen */
    uint32_t first_unseen; /* sequence number (in a view), 0: none */
    uint64_t size;         /* bytes of all live messages */
    uint64_t highest_modseq;
    uint32_t deleted;      /* messages with \Deleted */
    uint32_t uid_max;      /* highest UID shown, 0: empty */
};

/* Reported changes, in the order IMAP wants them (RFC 9051 7.5.1). */
struct mailbox_view_changes {
    void *arg;
    /* An expunge, seq as the client numbers it at this moment. */
    void (*expunged)(void *arg, uint32_t seq, uint32_t uid);
    /* The view now has exists messages (called only when it grew). */
    void (*exists)(void *arg, uint32_t exists, uint32_t recent);
    /* Flags of message m changed (another session or program did it). */
    void (*flags)(void *arg, const struct mailbox_message *m);
};

/* ---- the index --------------------------------------------------------- */

/* Open the folder at path (a Maildir root or a .Sub folder; the string is
 * copied): the shared index if one is loaded, else a new one loaded from
 * disk. uidvalidity_root: as in maildir_sync_opts (NULL: the time).
 * Returns 0 and a reference in *index_out, or an error of
 * maildir_sync_run(). Worker thread. */
int mailbox_index_open(const char *path, const char *uidvalidity_root,
                       struct mailbox_index **index_out);

/* Drop a reference. An index nobody holds stays loaded (the next open
 * finds it, refreshed only if the folder changed), up to
 * MAILBOX_INDEX_IDLE_MAX such indexes; beyond, the longest unused one is
 * freed. Any thread. */
#define MAILBOX_INDEX_IDLE_MAX 1024u
void mailbox_index_release(struct mailbox_index **index);

/* Free every index nobody holds (at shutdown, and for tests). Returns how
 * many went. Any thread. */
size_t mailbox_index_drop_idle(void);

/* Bring the index up to date with the disk if it may be out of date (marked
 * dirty, or new/, cur/ or dovecot-uidlist changed since the last sync), or
 * always with is_forced. is_move_new: move new/ files to cur/ (a SELECT
 * that is not EXAMINE). Views are notified of what changed. Returns 0 or
 * an error of maildir_sync_run(). Worker thread. */
int mailbox_index_refresh(struct mailbox_index *index, bool is_move_new, bool is_forced);

/* New mail was delivered into the folder at path (its root, as given to
 * mailbox_index_open): if the folder is loaded, mark it dirty and notify
 * its views. Cheap when it is not. Any thread. */
void mailbox_index_changed_path(const char *path);

/* Something changed the folder at path (store/maildir_watch saw it): if
 * the folder is held by a session and its directories are not as this
 * process last left them (our own renames record their times under the
 * sync lock, so they never count), mark it dirty and notify its views.
 * Returns false, changing nothing, while an APPEND or COPY of ours is
 * between linking its files and indexing them (ask again later). Blocks
 * on the folder's sync lock: the watcher's thread only. */
bool mailbox_index_changed_outside(const char *path);

/* An APPEND or COPY links files into the folder (begin) and has indexed
 * them with mailbox_index_add_files, or given up (end). Any thread. */
void mailbox_index_adding_begin(struct mailbox_index *index);
void mailbox_index_adding_end(struct mailbox_index *index);

const char *mailbox_index_path(const struct mailbox_index *index);

/* Status of the folder as the index holds it (no view). */
void mailbox_index_status(struct mailbox_index *index, struct mailbox_status *out);

/* A copy of the keyword table. */
void mailbox_index_keywords(struct mailbox_index *index, struct maildir_keywords *out);

/* Loaded indexes (for stats and tests). */
size_t mailbox_index_loaded_count(void);

/* ---- views ------------------------------------------------------------- */

/* Attach a view (SELECT / EXAMINE): it sees every message now in the
 * index; messages not yet claimed as recent by another view are \Recent
 * for it. notify(view) is called (under the index lock, any thread) when
 * something changed that the view has not reported. The view holds its
 * own reference to the index until detach. */
void mailbox_view_attach(struct mailbox_view *view, struct mailbox_index *index,
                         bool is_readonly, void (*notify)(struct mailbox_view *view),
                         void *owner);

/* Detach (CLOSE, UNSELECT, another SELECT, logout). Any thread. */
void mailbox_view_detach(struct mailbox_view *view);

bool mailbox_view_is_attached(const struct mailbox_view *view);

/* Status as the view sees it (SELECT's untagged answers). */
void mailbox_view_status(struct mailbox_view *view, struct mailbox_status *out);

/* True when the index has changes the view has not reported. */
bool mailbox_view_has_changes(struct mailbox_view *view);

/* True when the index was marked dirty (new mail waits for a refresh). */
bool mailbox_view_is_dirty(struct mailbox_view *view);

/* Among the views that find the index dirty, one should queue the refresh:
 * true for the first caller until mailbox_index_refresh() runs, or a
 * second has passed (so a session that went away meanwhile does not leave
 * the others waiting for ever). */
bool mailbox_view_claim_refresh(struct mailbox_view *view);

/* The shared index the view is attached to. */
struct mailbox_index *mailbox_view_index(const struct mailbox_view *view);

/* Report what changed since the view last looked: expunges first (only
 * when may_expunge: not during FETCH, STORE or SEARCH by sequence number),
 * then new messages (EXISTS), then flag changes of messages the view
 * shows. The callbacks run under the index lock: memory only. */
void mailbox_view_sync(struct mailbox_view *view, bool may_expunge,
                       const struct mailbox_view_changes *changes);

/* Copy the messages the view shows whose sequence number (by_uid: UID)
 * wanted() accepts into snapshot (appended). Returns 0 or -ENOMEM. */
int mailbox_view_collect(struct mailbox_view *view, bool by_uid,
                         bool (*wanted)(void *arg, uint32_t number), void *arg,
                         struct mailbox_snapshot *snapshot);

void mailbox_snapshot_free(struct mailbox_snapshot *snapshot);

enum mailbox_flags_op {
    MAILBOX_FLAGS_ADD,
    MAILBOX_FLAGS_REMOVE,
    MAILBOX_FLAGS_REPLACE,
};

/* Change flags of the snapshot's messages (STORE, and \Seen set by FETCH).
 * unchangedsince (0: none, RFC 7162): messages whose MODSEQ is higher are
 * left alone and marked for the caller's MODIFIED list (is_modified). Each changed message gets a new
 * MODSEQ and its file is renamed (worker thread); messages[i] is updated to
 * the new state. Messages expunged meanwhile are skipped (is_gone). The
 * view will not echo these changes back as untagged FETCH. Returns 0, or
 * -errno of a rename that failed (the index is then marked dirty so a
 * refresh restores the truth). */
int mailbox_view_store(struct mailbox_view *view, struct mailbox_snapshot *snapshot,
                       enum mailbox_flags_op op, uint32_t flags, uint32_t keywords,
                       uint64_t unchangedsince);

/* Expunge the view's messages with \Deleted (uids: only those in the
 * snapshot, for UID EXPUNGE; NULL: all). is_any_flags: the snapshot's
 * messages go whatever their flags (MOVE). Unlinks the files (worker
 * thread) and leaves tombstones that mailbox_view_sync() reports. Returns
 * the number expunged, or -errno of an unlink that failed. */
long mailbox_view_expunge(struct mailbox_view *view, const struct mailbox_snapshot *uids,
                          bool is_any_flags);

/* The index 0..25 of keyword name in the folder's dovecot-keywords,
 * adding it (under Dovecot's dotlock) when new. Returns the index,
 * -EINVAL (not a valid keyword), -ENOSPC (all 26 letters used: the keyword
 * cannot be stored, as with Dovecot's Maildir), -EAGAIN (lock held) or
 * -errno. Worker thread. */
int mailbox_index_keyword(struct mailbox_index *index, const char *name, size_t len);

/* The header cache: a message's header block, kept in the index once read
 * so FETCH of headers and header SEARCHes need not open the file. Bounded:
 * MAILBOX_HEADER_BYTES_MAX per message, MAILBOX_HEADER_CACHE_BYTES_MAX over
 * every index (beyond it nothing more is cached). */
#define MAILBOX_HEADER_BYTES_MAX (16u * 1024)
#define MAILBOX_HEADER_CACHE_BYTES_MAX (256u * 1024 * 1024)
void mailbox_index_header_put(struct mailbox_index *index, uint32_t uid, const char *header,
                              size_t len);

/* Remember that a message's file, read whole, holds no NUL byte: its
 * bytes may then go to a client as they are (splice). A message's content
 * never changes under its UID, so this stays true. */
void mailbox_index_set_nul_free(struct mailbox_index *index, uint32_t uid);

/* The body text cache: a message's searchable body text (SEARCH BODY /
 * TEXT; what the bytes mean is the caller's, see imap_search_body_text),
 * kept once made so later searches need not read the file. Each text is
 * an immutable blob with an atomic reference count: the index entry holds
 * one reference, each snapshot that collected it another, so an entry
 * expunged or an index unloaded while a search runs frees nothing the
 * search still reads. Bounded: at most MAILBOX_BODY_TEXT_BYTES_MAX bytes
 * of text per message (larger ones are not cached and are read each
 * time), and MAILBOX_BODY_TEXT_CACHE_BYTES_MAX bytes of blobs over every
 * index (beyond it nothing more is cached). A text is dropped when its
 * message is expunged, its index unloaded (and at shutdown,
 * mailbox_index_drop_idle); its bytes leave the count when the last
 * reference goes. */
#define MAILBOX_BODY_TEXT_BYTES_MAX (64u * 1024)
#define MAILBOX_BODY_TEXT_CACHE_BYTES_MAX (256u * 1024 * 1024)

/* Cache text[0..len) as the body text of message uid (copied), of which
 * the first body_len bytes are the body proper (the rest is the caller's,
 * e.g. attached headers). Does nothing when the message is gone, already
 * has one, len is over MAILBOX_BODY_TEXT_BYTES_MAX (the message is then
 * marked is_body_text_too_large) or the global bound would be passed.
 * Any thread. */
void mailbox_index_body_text_put(struct mailbox_index *index, uint32_t uid, const char *text,
                                 size_t len, size_t body_len);

/* Mark message uid as having a body text over MAILBOX_BODY_TEXT_BYTES_MAX
 * (is_body_text_too_large), so later commands do not make it again. Any
 * thread. */
void mailbox_index_body_text_too_large(struct mailbox_index *index, uint32_t uid);

/* The bytes of a body text (valid while a reference is held), its length
 * in *len_out and the body's in *body_len_out. */
const char *mailbox_body_text_bytes(const struct mailbox_body_text *text, size_t *len_out,
                                    size_t *body_len_out);

/* Bytes of body text blobs alive now, over every index (stats, tests). */
size_t mailbox_index_body_text_cache_bytes(void);

/* Lower the global bound (configuration, tests); a value over
 * MAILBOX_BODY_TEXT_CACHE_BYTES_MAX means that ceiling. Texts already
 * cached stay. Any thread. */
void mailbox_index_body_text_cache_bytes_max_set(size_t bytes_max);

/* Remember a message's INTERNALDATE (its file's mtime), read by a command,
 * so later ones need not stat the file. */
void mailbox_index_set_mtime(struct mailbox_index *index, uint32_t uid, int64_t mtime);

/* Files this process just put into the folder's cur/ (APPEND, COPY):
 * give them UIDs and entries without rescanning the folder when nothing
 * else changed it (else a full refresh finds them). names are file names
 * in cur/, in the order they were made. uids_out[i] gets each UID (0 when
 * a full refresh could not find one). Returns 0 or an error of
 * maildir_sync_run(). Worker thread. */
int mailbox_index_add_files(struct mailbox_index *index, const char *const *names, size_t count,
                            uint32_t *uids_out);

/* The UID of a base file name in the index (after a refresh), or 0. */
uint32_t mailbox_index_uid_of_base(struct mailbox_index *index, const char *base, size_t len);

#endif
