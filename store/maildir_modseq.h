/*
 * store/maildir_modseq.h - CONDSTORE / QRESYNC mod-sequences of a Maildir
 * folder, kept across restarts in a file of toaster's own beside Dovecot's
 * (Dovecot keeps them in its index files, which toaster does not write;
 * Dovecot ignores this file, so moving back and forth stays safe).
 *
 * File "toaster-modseq", text, append-only:
 *   toaster-modseq 1 <uidvalidity> <base>\n      header
 *   <uid> <modseq>\n                              one per change
 * A message without a record has MODSEQ <base>; "0 <modseq>" records the
 * highest MODSEQ reached (expunges). Per UID the highest record wins, so
 * appends from two workers in either order read back the same. Lines that
 * do not parse are skipped. A file for another UIDVALIDITY, or none, starts
 * over with base = the current time in microseconds (above anything handed
 * out before). Records are appended without fsync: a MODSEQ is a cache
 * hint for clients, and after a crash the base of a rewritten file still
 * only grows.
 *
 * Blocking file I/O: worker threads only.
 * Limits: MAILDIR_MODSEQ_FILE_BYTES_MAX (a larger file starts over).
 */
#ifndef TOASTER_STORE_MAILDIR_MODSEQ_H
#define TOASTER_STORE_MAILDIR_MODSEQ_H

#include <stddef.h>
#include <stdint.h>

#define MAILDIR_MODSEQ_FILE_NAME "toaster-modseq"
#define MAILDIR_MODSEQ_FILE_BYTES_MAX (64u * 1024 * 1024)

struct maildir_modseq_record {
    uint32_t uid; /* 0: the highest MODSEQ reached */
    uint64_t modseq;
};

struct maildir_modseq {
    uint64_t base;
    uint64_t highest;
    struct maildir_modseq_record *records; /* by uid, one per uid, highest kept */
    size_t count;
};

/* Read the folder's file for uidvalidity (starting a new one when it is
 * missing, for another UIDVALIDITY or unreadable). Returns 0 and fills
 * *out (free with maildir_modseq_free), or -ENOMEM. A file that cannot be
 * written is logged and MODSEQs then only last while loaded. */
int maildir_modseq_load(const char *folder, uint32_t uidvalidity, struct maildir_modseq *out);

/* MODSEQ of uid after a load: its record, or base. */
uint64_t maildir_modseq_of(const struct maildir_modseq *m, uint32_t uid);

void maildir_modseq_free(struct maildir_modseq *m);

/* Append records (errors are logged: the values then live in memory only
 * until the next load, where base still grows). */
void maildir_modseq_append(const char *folder, const struct maildir_modseq_record *records,
                           size_t count);

/* Rewrite the file compactly (header and the given records), atomically
 * (a temporary file renamed over). Returns 0 or -errno. */
int maildir_modseq_rewrite(const char *folder, uint32_t uidvalidity, uint64_t base,
                           const struct maildir_modseq_record *records, size_t count);

#endif
