/*
 * store/maildir_folders.h - a user's IMAP folders in Maildir++ layout, as
 * Dovecot 2.3 keeps them, so a mail root can move between Dovecot and
 * toasterd in both directions.
 *
 * Layout: the mail root (<data_dir>/mail/<domain>/<local>/Maildir) is
 * INBOX (its cur/ new/ tmp/); folder "Sent" is the directory <root>/.Sent,
 * folder "Archive.2024" is <root>/.Archive.2024 ('.' is the hierarchy
 * separator). Parents are not required: ".a.b" may exist without ".a"
 * (the list then reports "a" as non-existent with children, see below).
 * A folder directory holds cur/ new/ tmp/ and an empty "maildirfolder"
 * file, as Dovecot creates it.
 *
 * Names given to this module are STORAGE names: IMAP modified UTF-7
 * (RFC 3501 5.1.3) with '.' as the separator; the IMAP layer converts
 * UTF-8 names before calling. "INBOX" in any case is the root itself.
 * "INBOX.x" is the ordinary folder ".INBOX.x" (Dovecot with an empty
 * namespace prefix); a first level spelled "inbox." in another case is
 * written as "INBOX." (Dovecot does the same), so "inbox.x" and "INBOX.x"
 * are one folder. maildir_folders_name_check() lists what a name may be.
 *
 * Directory entries of the root that are not listed as folders: ".", "..",
 * anything starting with ".." (Dovecot's "..DOVECOT-TRASH", our own
 * "..toaster-create.*" build directories), non-directories (a symlink is
 * never a folder: following one could leave the root), names that fail the
 * check, a ".INBOX" entry, and first levels spelled "inbox." in a case
 * other than "INBOX." (neither Dovecot nor we create those).
 *
 * Durability: create builds the folder under a hidden "..toaster-create.*"
 * name, fsyncs it and renames it into place, so after a crash a folder is
 * either complete or absent (a crash can leave a hidden build directory;
 * it is never listed and costs only its empty directories). Delete renames
 * the folder to "..DOVECOT-TRASH" first (atomic: it vanishes at once) and
 * then removes the tree. Every rename here refuses to replace an existing
 * entry (renameat2 RENAME_NOREPLACE, or a stat + rename on file systems
 * without it). Every change ends with an fsync of the root.
 *
 * Concurrency: calls on the same root from several threads or from Dovecot
 * are not serialized here. mkdir and the no-replace renames make each step
 * safe (a loser gets -EEXIST or -ENOENT); a multi-step rename of a folder
 * with children is not atomic as a whole (see maildir_folders_rename()).
 *
 * Blocking file I/O and allocation: worker threads only, never a reactor.
 * Limits: MAILDIR_FOLDERS_MAX folders per user (lowered by the callers'
 * folders_max argument), MAILDIR_FOLDERS_NAME_BYTES_MAX bytes and
 * MAILDIR_FOLDERS_DEPTH_MAX levels per name, MAILDIR_FOLDERS_ROOT_ENTRIES_MAX
 * directory entries read from a root, MAILDIR_FOLDERS_TRASH_ENTRIES_MAX
 * entries removed by one delete, MAILDIR_FOLDERS_INBOX_MOVE_MAX messages
 * moved by one INBOX rename.
 */
#ifndef TOASTER_STORE_MAILDIR_FOLDERS_H
#define TOASTER_STORE_MAILDIR_FOLDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Folders per user (INBOX not counted). A list with more fails -E2BIG; a
 * create that would pass it fails -EDQUOT. Callers pass folders_max: 0 or
 * anything above this means this; configuration may only lower it. */
#define MAILDIR_FOLDERS_MAX 10000
/* Bytes of a storage name: the directory entry "." + name fits NAME_MAX. */
#define MAILDIR_FOLDERS_NAME_BYTES_MAX 254
/* Levels of a name ("a.b.c" has 3). */
#define MAILDIR_FOLDERS_DEPTH_MAX 32
/* Directory entries of a root read by one scan (folders, Dovecot's files,
 * leftovers); a root with more fails -E2BIG. */
#define MAILDIR_FOLDERS_ROOT_ENTRIES_MAX (4 * MAILDIR_FOLDERS_MAX + 1024)
/* Entries one delete removes from the trash tree, and its depth (a folder
 * is 2 deep: .x/cur/file). Past either the trash is left for the next
 * delete (see maildir_folders_delete()). */
#define MAILDIR_FOLDERS_TRASH_ENTRIES_MAX (UINT32_C(1) << 22)
#define MAILDIR_FOLDERS_TRASH_DEPTH_MAX 8
/* Message files one INBOX rename moves. */
#define MAILDIR_FOLDERS_INBOX_MOVE_MAX (UINT32_C(1) << 22)

/* Dovecot's name for a folder being deleted (in the root). */
#define MAILDIR_FOLDERS_TRASH_NAME "..DOVECOT-TRASH"
/* The empty marker file in every Maildir++ folder. */
#define MAILDIR_FOLDERS_MARKER_NAME "maildirfolder"

struct maildir_folder {
    char *name; /* storage name, NUL-terminated; owned by the list */
    size_t name_len;
    const char *special_use; /* "\\Sent" ... (static text) or NULL */
    bool is_inbox;           /* the root; always the first entry */
    bool is_selectable;      /* cur/ and new/ exist */
    bool has_children;       /* some listed name starts with name + "." */
    /* No directory: a parent that exists only because a child does ("a"
     * for ".a.b"). IMAP lists it \NonExistent or \Noselect, with
     * \HasChildren. is_selectable is false. */
    bool is_nonexistent;
};

struct maildir_folder_list {
    struct maildir_folder *folders; /* INBOX, then the others bytewise sorted */
    size_t count;
};

/* Whether name[0..len) is a valid storage name. Returns 0, or:
 *   -EINVAL  empty; a NUL, control byte (< 0x20, 0x7f), byte >= 0x80 or
 *            '/'; a leading or trailing '.' or an empty level ("a..b");
 *            a leading '~' (Dovecot refuses it: home-directory syntax);
 *            not canonical modified UTF-7 (an unterminated "&", bad or
 *            padded base64, printable ASCII or a control character
 *            encoded, an unpaired surrogate, two adjacent shifts; "&-" is
 *            '&');
 *   -ENAMETOOLONG  more than MAILDIR_FOLDERS_NAME_BYTES_MAX bytes, or more
 *            than MAILDIR_FOLDERS_DEPTH_MAX levels (IMAP: NO [LIMIT]).
 * A level is never "." or "..": '.' is the separator and empty levels are
 * refused, so no name can leave the root. Pure; any thread. */
int maildir_folders_name_check(const char *name, size_t len);

/* Whether name[0..len) is INBOX (any case). Pure; any thread. */
bool maildir_folders_is_inbox(const char *name, size_t len);

/* The directory of folder name: root itself for INBOX, else root + "/." +
 * name (with "inbox." spelled "INBOX."). Nothing is touched on disk.
 * Returns 0, an error of maildir_folders_name_check(), or -ENAMETOOLONG
 * (out_bytes too small; out is then an empty string if out_bytes > 0). */
int maildir_folders_path(const char *root, const char *name, char *out, size_t out_bytes);

/* Lists the folders of root: INBOX first, then every folder directory
 * (see the file comment for what is skipped) and every missing parent
 * (is_nonexistent), sorted bytewise. Special use from
 * maildir_folders_special_use(). cur/ is not required to list a folder.
 * folders_max: 0 = MAILDIR_FOLDERS_MAX. Returns 0 and fills *out (free
 * with maildir_folders_list_free(), also safe after an error), or -ENOENT
 * (no root), -E2BIG (more than folders_max folders, more missing parents
 * than that again, or more than MAILDIR_FOLDERS_ROOT_ENTRIES_MAX entries),
 * -ENOMEM, or another -errno. */
int maildir_folders_list(const char *root, size_t folders_max, struct maildir_folder_list *out);

void maildir_folders_list_free(struct maildir_folder_list *list);

/* Creates folder name: cur/ new/ tmp/ and "maildirfolder" (dirs 0700, file
 * 0600), built under a hidden name, fsynced, renamed into place, root
 * fsynced. Parents are not created (Maildir++ needs none; Dovecot the
 * same). No dovecot-uidlist is written: the first maildir_sync_run() gives
 * the folder its UIDVALIDITY from <root>/dovecot-uidvalidity, so a folder
 * deleted and created again gets a new one. Returns 0, a name-check error,
 * -EEXIST (INBOX, or an entry of that name exists, folder or not),
 * -EDQUOT (folders_max folders exist already), -ENOENT (no root), or
 * another -errno; on failure nothing is left visible. */
int maildir_folders_create(const char *root, const char *name, size_t folders_max);

/* Deletes folder name and its messages. Returns 0, a name-check error,
 * -EPERM (INBOX), -ENOENT (no such folder directory), -ENOTEMPTY (the
 * folder has children: IMAP answers NO, delete them first; Maildir++
 * cannot keep ".a.b" meaningful under a deleted ".a" holding mail), or
 * another -errno. The folder is renamed to MAILDIR_FOLDERS_TRASH_NAME (a
 * leftover trash from a crash or a concurrent delete is removed first: if
 * that one is over the bounds, -E2BIG, and each call removes up to the
 * bound, so a retry makes progress) and
 * the root fsynced: from then on the folder is gone and 0 is returned even
 * if removing the trash tree fails or passes its bounds (logged; the next
 * delete removes the rest). The removal never follows a symlink: a link in
 * the folder is unlinked, its target untouched. Subscriptions are not
 * changed (IMAP keeps them; Dovecot the same). */
int maildir_folders_delete(const char *root, const char *name);

/* Renames folder old_name to new_name together with its children
 * (".old.x" -> ".new.x"), UIDs and UIDVALIDITY kept. Every child is
 * collected and every target checked before the first rename; the renames
 * then run one by one (a crash in between leaves some children under the
 * old name, each folder whole) and a failure renames the done ones back.
 * Root fsynced at the end.
 * INBOX (RFC 3501 6.3.5): creates new_name as a folder (as
 * maildir_folders_create()), copies dovecot-keywords into it (so keyword
 * letters in file names keep their meaning) and moves every message file
 * of the root's new/ and cur/ into the new folder's (rename(2) each);
 * INBOX stays, empty, and its dovecot-uidlist is left for the next sync to
 * notice; INBOX's children are not moved. A message delivered during the
 * move may stay in INBOX. Directories are fsynced after the moves.
 * Returns 0, a name-check error (also for a child's new name), -ENOENT (no
 * folder old_name), -EEXIST (new_name is INBOX, or new_name or a child's
 * target exists), -EINVAL (new_name is old_name's descendant), -E2BIG
 * (more children than folders_max; an INBOX rename over
 * MAILDIR_FOLDERS_INBOX_MOVE_MAX messages, the rest staying in INBOX),
 * -EDQUOT (INBOX rename with folders_max folders), or another -errno.
 * Subscriptions are not changed. */
int maildir_folders_rename(const char *root, const char *old_name, const char *new_name,
                           size_t folders_max);

/* RFC 6154 special use of a storage name: "\\Sent" for "Sent", "\\Drafts"
 * for "Drafts", "\\Junk" for "Junk", "\\Trash" for "Trash", "\\Archive"
 * for "Archive"; NULL for anything else. Exact, case-sensitive, top level
 * only ("Archive.2024" and "sent" have none). Pure; any thread. */
const char *maildir_folders_special_use(const char *name);

/* Creates Sent, Drafts, Junk and Trash if missing and subscribes the ones
 * it created (in the "subscriptions" file, under its dotlock). A folder
 * that exists (any entry of its name) is left alone and not subscribed
 * again, so a user's unsubscribe sticks. When all four exist this is four
 * fstatat calls. Returns 0, -ENOENT (no root: the caller makes the
 * Maildir first), -EAGAIN (the subscriptions lock is held: nothing done,
 * retry later), or another -errno (folders made before the failure stay). */
int maildir_folders_ensure_defaults(const char *root);

/* A user's Maildir root ("<home>/Maildir") with its parents and cur/ new/
 * tmp/, as delivery would make them (mode 0700; existing ones are fine).
 * Returns 0 or -errno. */
int maildir_folders_make_root(const char *root);

/* SUBSCRIBE / UNSUBSCRIBE: add name to (remove it from) the
 * "subscriptions" file under its dotlock. The folder need not exist (RFC
 * 9051 6.3.7). Returns 0 (also when nothing changed), -EAGAIN (lock held),
 * -E2BIG (too many subscriptions), or another -errno. */
int maildir_folders_subscribe(const char *root, const char *name, bool is_subscribe);

/* Read the "subscriptions" file into subs (initialised by the caller; a
 * missing file is an empty list). Returns 0 or -errno. */
struct maildir_subscriptions;
int maildir_folders_subscriptions_read(const char *root, struct maildir_subscriptions *subs);

#endif
