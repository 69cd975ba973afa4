/*
 * store/users_edit.h - change users_file (Dovecot passwd-file) in place,
 * for `toasterctl user add|passwd|del|list`.
 *
 * An edit is open, change, commit, close:
 *   users_edit_open()    takes an exclusive flock on "<users_file>.lock"
 *                        (a side file that is never removed, so the lock
 *                        survives the rename of users_file itself) and
 *                        reads the whole file;
 *   users_edit_add() / _passwd() / _del()   change the lines in memory;
 *   users_edit_commit()  writes a temporary file in the same directory with
 *                        the old file's mode and owner (0640 for a new
 *                        file), fsyncs it, checks that nobody replaced or
 *                        changed users_file since it was read, renames it
 *                        over users_file and fsyncs the directory;
 *   users_edit_close()   drops the lock and wipes the hashes in memory.
 * Lines the edit does not touch (comments, blank lines, other users, their
 * extra fields, CRLF endings, bytes the daemon would refuse) are written
 * back byte for byte. A user is matched as store/recipients.c matches it
 * (ASCII case-insensitive, a trailing dot of the domain ignored), and the
 * first entry for a user is the one in force, as in Dovecot.
 *
 * Blocking file I/O and crypt(3): for toasterctl, never for a daemon
 * thread. Limits: USERS_EDIT_FILE_BYTES_MAX for the whole file,
 * USERS_EDIT_NAME_BYTES_MAX per user name, USERS_EDIT_PASSWORD_BYTES_MAX
 * per password.
 */
#ifndef TOASTER_STORE_USERS_EDIT_H
#define TOASTER_STORE_USERS_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#define USERS_EDIT_FILE_BYTES_MAX (256u * 1024u * 1024u)
#define USERS_EDIT_LOCAL_BYTES_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define USERS_EDIT_DOMAIN_BYTES_MAX 253 /* RFC 1035, without the root dot */
#define USERS_EDIT_NAME_BYTES_MAX 254   /* RFC 5321 path (256) less "<>" */
#define USERS_EDIT_HASH_BYTES_MAX 512   /* "{SCHEME}" and the crypt string */
/* libxcrypt refuses longer passphrases (CRYPT_MAX_PASSPHRASE_SIZE - 1). */
#define USERS_EDIT_PASSWORD_BYTES_MAX 511
#define USERS_EDIT_LOCK_WAIT_MS 10000 /* another toasterctl holding the lock */
#define USERS_EDIT_NEW_FILE_MODE 0640

struct users_edit; /* opaque: the file's bytes, its identity, the lock */

enum users_edit_scheme {
    USERS_EDIT_YESCRYPT,     /* "{CRYPT}$y$...": the default */
    USERS_EDIT_SHA512_CRYPT, /* "{SHA512-CRYPT}$6$...", Dovecot 2.x everywhere */
    USERS_EDIT_BLF_CRYPT,    /* "{BLF-CRYPT}$2y$12$..." */
};

/* Check a user name for adding and write its canonical form (ASCII lower
 * case) into canonical_out (USERS_EDIT_NAME_BYTES_MAX + 1 bytes). A name is
 * local@domain: one '@', a local part of 1..64 bytes without ':', '"', '/',
 * blanks or control bytes, not starting with '.' and without "..", and a
 * domain of letters, digits, '-', '_' and dots between non-empty labels.
 * Bytes >= 0x80 must be well-formed UTF-8. Returns 0, or -EINVAL with the
 * reason in err (always NUL-terminated). */
int users_edit_name_check(const char *name, char *canonical_out, char *err, size_t err_bytes);

/* Parse "YESCRYPT", "SHA512-CRYPT" or "BLF-CRYPT" (any case). Returns 0
 * or -EINVAL. */
int users_edit_scheme_parse(const char *text, enum users_edit_scheme *scheme_out);

/* Hash password (NUL-terminated, 1..USERS_EDIT_PASSWORD_BYTES_MAX bytes, no
 * CR or LF) with a fresh random salt into hash_out as users_file stores it,
 * e.g. "{CRYPT}$y$j9T$...", and check it with password_verify(). Returns 0,
 * -EINVAL for an empty, too long or multi-line password, -ENOSPC when
 * hash_bytes is too small, -ENOTSUP when the result does not verify, or
 * -errno from libxcrypt (no random bytes, out of memory). The work area is
 * wiped. */
int users_edit_hash(enum users_edit_scheme scheme, const char *password, char *hash_out,
                    size_t hash_bytes);

/* Lock users_file (waiting up to USERS_EDIT_LOCK_WAIT_MS for another edit
 * to finish) and read it; a missing file is an empty one. Returns 0 and
 * sets *edit_out (the caller closes it), or -errno with the reason in err:
 * -EWOULDBLOCK when the lock stayed taken, -EFBIG over
 * USERS_EDIT_FILE_BYTES_MAX, -EISDIR and the like for a path that is no
 * regular file. */
int users_edit_open(const char *users_path, struct users_edit **edit_out, char *err,
                    size_t err_bytes);

/* Append "name:hash\n" (a newline is added first when the file does not end
 * with one). name must have passed users_edit_name_check(). Returns 0,
 * -EEXIST when the user is already there, -EINVAL for a hash with ':',
 * CR, LF or NUL, -ENOMEM. */
int users_edit_add(struct users_edit *edit, const char *name, const char *hash);

/* Replace the password field of the user's first entry with hash, keeping
 * the name as written, the fields after the hash, the blanks around the
 * line and its line ending. Returns 0, -ENOENT when there is no such user,
 * -EINVAL for a bad hash, -ENOMEM. */
int users_edit_passwd(struct users_edit *edit, const char *name, const char *hash);

/* Remove every entry of the user (a later duplicate would otherwise come
 * into force). Returns 0, or -ENOENT when there is no such user. */
int users_edit_del(struct users_edit *edit, const char *name);

/* Whether the file has an entry for name (canonical form). */
bool users_edit_has_user(const struct users_edit *edit, const char *name);

/* The user names in file order, as written, for `toasterctl user list`:
 * calls each() once per entry line (comments and blank lines skipped), with
 * the name (not NUL-terminated) and its length. Never gives a hash. */
void users_edit_list(const struct users_edit *edit,
                     void (*each)(void *arg, const char *name, size_t name_len), void *arg);

/* Write the edited file atomically (see the top of this file). Returns 0,
 * -EAGAIN when users_file was changed or replaced by someone not holding
 * the lock since users_edit_open() (nothing written: run the edit again),
 * or -errno from the file system with the step in err; on any failure the
 * old file is untouched and the temporary file removed. */
int users_edit_commit(struct users_edit *edit, char *err, size_t err_bytes);

/* Drop the lock, wipe and free. NULLs the pointer; NULL is fine. */
void users_edit_close(struct users_edit **edit);

#endif
