/*
 * core/privileges.h - running as root only as long as needed: resolve the
 * mail user (`user`, `group`) at start, make every file toasterd creates
 * belong to it from the first one on, bind the listeners and read the TLS
 * keys as root, then give root up for good.
 *
 * The start-up order (core/main.c):
 *   1. privileges_prepare(): look the user and group up (NSS, /etc/group
 *      for the supplementary groups) while still single-threaded.
 *   2. privileges_data_dir(): make data_dir (owned by the user, 0700) or
 *      check that the user owns it.
 *   3. privileges_files_as(USER) -> tls_server_prepare() (self-signed pair)
 *      -> privileges_files_as(ROOT) -> tls_server_create() (keys readable by
 *      root only) -> privileges_files_as(USER). From here on every thread is
 *      made with the user's file-system ids (setfsuid/setfsgid: Linux,
 *      per thread, inherited by the threads it creates), while the
 *      capabilities that binding needs stay.
 *   4. every reactor listens (reactor_start() returns after bind/listen).
 *   3b. with chroot set: name servers noted, the Public Suffix List and
 *      DKIM keys loaded, the configuration's paths rewritten to inside
 *      ones (core/chroot_paths.h), then privileges_chroot(). Everything
 *      after this opens files inside the chroot only; binding stays root's.
 *   5. privileges_drop(): setgroups, setresgid, setresuid. glibc applies
 *      each of these to every thread of the process (its "setxid"
 *      broadcast), so no thread stays root; then setuid(0) must fail.
 * The process stays non-dumpable after the drop (the kernel's default for
 * a process whose ids changed): its memory holds TLS keys the mail user
 * cannot read, so no core file or ptrace by that user.
 *
 * Main thread only. Without `user` and not started as root, nothing
 * changes; started as root without `user`, toasterd stays root (warned).
 */
#ifndef TOASTER_CORE_PRIVILEGES_H
#define TOASTER_CORE_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PRIVILEGES_GROUPS_MAX 64

struct privileges {
    bool  is_drop;    /* started as root with a user: drop after binding */
    uid_t uid;        /* the uid toasterd runs as after start */
    gid_t gid;
    char  user[64];   /* the name, for logs ("" without a user) */
    gid_t groups[PRIVILEGES_GROUPS_MAX]; /* supplementary groups of the user */
    size_t group_count;
};

/* Resolve user (a name or a number) and group (a name, a number, or ""
 * for the user's primary group). With user "": no drop; *warning_out is
 * set when running as root then. Returns 0, or -ENOENT (no such user or
 * group), -EPERM (a user other than the one running and not root), with
 * the reason in err. */
int privileges_prepare(const char *user, const char *group, struct privileges *out,
                       bool *warning_out, char *err, size_t err_bytes);

/* Make data_dir when it is missing (mode 0700, owned by the user), else
 * check that it is a directory owned by the uid toasterd runs as (Dovecot's
 * mail_uid check), and so are the directories right under it: a tree
 * owned by someone else would half work. Returns 0 or -errno / -EPERM with
 * the reason in err. */
int privileges_data_dir(const struct privileges *privileges, const char *data_dir, char *err,
                        size_t err_bytes);

enum privileges_files {
    PRIVILEGES_FILES_ROOT, /* file-system ids of root */
    PRIVILEGES_FILES_USER, /* file-system ids of the user: files created belong to it */
};

/* Set this thread's file-system uid and gid (threads created later inherit
 * them). Nothing without is_drop. Returns 0 or -EPERM (the kernel did not
 * take them) with the reason in err. */
int privileges_files_as(const struct privileges *privileges, enum privileges_files as, char *err,
                        size_t err_bytes);

/* Enter root_dir for good: chroot(2) with root's file-system ids (the
 * user may not traverse the path to it), then chdir("/"). Call it once
 * everything outside the chroot has been read and the configuration's
 * paths have been rewritten (core/chroot_paths.h), while still root and
 * single-threaded, before privileges_drop(). Needs is_drop (started as
 * root with a user): -EPERM otherwise. Returns 0 or -errno with the reason
 * in err. */
int privileges_chroot(const struct privileges *privileges, const char *root_dir, char *err,
                      size_t err_bytes);

/* Give root up for every thread: supplementary groups, gid, uid (real,
 * effective, saved, file system); then verify that setuid(0) fails and
 * the ids are the user's. Nothing without is_drop. Returns 0, or -errno
 * with the reason in err (the caller must not go on). */
int privileges_drop(const struct privileges *privileges, char *err, size_t err_bytes);

#endif
