/*
 * core/privileges.c - resolve the mail user, own data_dir, give root up.
 *
 * Owns nothing after start. Runs on the main thread: privileges_prepare()
 * before any thread exists (NSS lookups), privileges_drop() once every
 * reactor listens. See core/privileges.h for the order and why it is safe
 * with threads (glibc's setxid broadcast for setgroups/setresgid/
 * setresuid; setfsuid/setfsgid are per thread and inherited).
 * Limits: PRIVILEGES_GROUPS_MAX supplementary groups.
 */
#define _GNU_SOURCE
#include "core/privileges.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"

/* getpwnam_r / getgrnam_r scratch: glibc's own suggestion is 1 KiB; a
 * group with many members needs more, so grow up to this bound. */
#define PRIVILEGES_NSS_BYTES_MAX (1024u * 1024u)

static int __attribute__((format(printf, 4, 5)))
privileges_error(char *err, size_t err_bytes, int rc, const char *fmt, ...)
{
    if (err_bytes > 0) {
        va_list ap;
        va_start(ap, fmt);
        (void)vsnprintf(err, err_bytes, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* A decimal id ("65534"), within uid_t / gid_t, no sign. */
static bool
privileges_parse_id(const char *text, unsigned long *id_out)
{
    if (text[0] < '0' || text[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long id = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || id >= (unsigned long)UINT32_MAX) {
        return false;
    }
    *id_out = id;
    return true;
}

/* The passwd entry by name or number; *found_out false when there is
 * none. buf holds its strings. Returns 0 or -errno. */
static int
privileges_lookup_user(const char *user, struct passwd *pw, char **buf, bool *found_out)
{
    unsigned long id = 0;
    bool is_number = privileges_parse_id(user, &id);
    for (size_t bytes = 1024; bytes <= PRIVILEGES_NSS_BYTES_MAX; bytes *= 4) {
        char *grown = realloc(*buf, bytes);
        if (grown == NULL) {
            return -ENOMEM;
        }
        *buf = grown;
        struct passwd *result = NULL;
        int rc = is_number ? getpwuid_r((uid_t)id, pw, *buf, bytes, &result)
                           : getpwnam_r(user, pw, *buf, bytes, &result);
        if (rc == ERANGE) {
            continue;
        }
        *found_out = rc == 0 && result != NULL;
        return rc == 0 || rc == ENOENT || rc == ESRCH ? 0 : -rc;
    }
    return -ERANGE;
}

static int
privileges_lookup_group(const char *group, gid_t *gid_out, bool *found_out)
{
    unsigned long id = 0;
    if (privileges_parse_id(group, &id)) {
        *gid_out = (gid_t)id;
        *found_out = true;
        return 0;
    }
    char *buf = NULL;
    int rc = -ERANGE;
    for (size_t bytes = 1024; bytes <= PRIVILEGES_NSS_BYTES_MAX; bytes *= 4) {
        char *grown = realloc(buf, bytes);
        if (grown == NULL) {
            rc = -ENOMEM;
            break;
        }
        buf = grown;
        struct group gr;
        struct group *result = NULL;
        int got = getgrnam_r(group, &gr, buf, bytes, &result);
        if (got == ERANGE) {
            continue;
        }
        *found_out = got == 0 && result != NULL;
        if (*found_out) {
            *gid_out = gr.gr_gid;
        }
        rc = got == 0 || got == ENOENT || got == ESRCH ? 0 : -got;
        break;
    }
    free(buf);
    return rc;
}

int
privileges_prepare(const char *user, const char *group, struct privileges *out,
                   bool *warning_out, char *err, size_t err_bytes)
{
    ASSERT(user != NULL && group != NULL);
    ASSERT(out != NULL && warning_out != NULL);
    memset(out, 0, sizeof(*out));
    *warning_out = false;
    out->uid = geteuid();
    out->gid = getegid();
    if (user[0] == '\0') {
        if (group[0] != '\0') {
            return privileges_error(err, err_bytes, -EINVAL,
                                    "group = %s needs user: set both, or neither", group);
        }
        *warning_out = geteuid() == 0;
        return 0;
    }
    if (strlen(user) >= sizeof(out->user)) {
        return privileges_error(err, err_bytes, -EINVAL, "user: name longer than %zu bytes",
                                sizeof(out->user) - 1);
    }
    struct passwd pw;
    char *buf = NULL;
    bool is_found = false;
    int rc = privileges_lookup_user(user, &pw, &buf, &is_found);
    if (rc != 0) {
        free(buf);
        return privileges_error(err, err_bytes, rc, "user = %s: looking it up: %s", user,
                                strerror(-rc));
    }
    unsigned long number = 0;
    if (!is_found && !privileges_parse_id(user, &number)) {
        free(buf);
        return privileges_error(err, err_bytes, -ENOENT,
                                "user = %s: no such user (useradd --system %s)", user, user);
    }
    if (is_found) {
        out->uid = pw.pw_uid;
        out->gid = pw.pw_gid;
    } else {
        out->uid = (uid_t)number; /* a bare uid without a passwd entry needs a group */
    }
    (void)snprintf(out->user, sizeof(out->user), "%s", user);
    if (group[0] != '\0') {
        bool is_group_found = false;
        gid_t gid = 0;
        rc = privileges_lookup_group(group, &gid, &is_group_found);
        if (rc != 0 || !is_group_found) {
            free(buf);
            return privileges_error(err, err_bytes, rc != 0 ? rc : -ENOENT,
                                    "group = %s: %s", group,
                                    rc != 0 ? strerror(-rc) : "no such group");
        }
        out->gid = gid;
    } else if (!is_found) {
        free(buf);
        return privileges_error(err, err_bytes, -EINVAL,
                                "user = %s has no passwd entry: set group too", user);
    }
    /* The supplementary groups the user has in /etc/group (ssl-cert, say,
     * for reading renewed keys on a reload), read now while NSS is safe. */
    out->groups[0] = out->gid;
    out->group_count = 1;
    if (is_found) {
        int count = PRIVILEGES_GROUPS_MAX;
        if (getgrouplist(pw.pw_name, out->gid, out->groups, &count) < 0) {
            free(buf);
            return privileges_error(err, err_bytes, -E2BIG,
                                    "user = %s is in more than %d groups", user,
                                    PRIVILEGES_GROUPS_MAX);
        }
        ASSERT(count >= 1 && count <= PRIVILEGES_GROUPS_MAX);
        out->group_count = (size_t)count;
    }
    free(buf);
    if (out->uid == 0) {
        return privileges_error(err, err_bytes, -EINVAL,
                                "user = %s is root: leave user empty to stay root", user);
    }
    if (geteuid() != 0) {
        if (out->uid == geteuid() && out->gid == getegid()) {
            return 0; /* already running as that user: nothing to drop */
        }
        return privileges_error(err, err_bytes, -EPERM,
                                "user = %s: toasterd runs as uid %u and can only become "
                                "uid %u when started as root",
                                user, (unsigned)geteuid(), (unsigned)out->uid);
    }
    out->is_drop = true;
    return 0;
}

/* The directories right under data_dir (mail, queue, spool, kv, tls...)
 * belong to the same uid: a tree left by an earlier start as root would
 * otherwise fail message by message. Files there (users, aliases) may be
 * anyone's the user can read. At most PRIVILEGES_DATA_DIR_ENTRIES_MAX
 * entries are looked at. */
#define PRIVILEGES_DATA_DIR_ENTRIES_MAX 4096
static int
privileges_data_dir_children(const struct privileges *privileges, const char *data_dir,
                             char *err, size_t err_bytes)
{
    DIR *dir = opendir(data_dir);
    if (dir == NULL) {
        return privileges_error(err, err_bytes, -errno, "data_dir %s: %s", data_dir,
                                strerror(errno));
    }
    int rc = 0;
    struct dirent *entry;
    for (unsigned seen = 0; rc == 0 && seen < PRIVILEGES_DATA_DIR_ENTRIES_MAX &&
                            (entry = readdir(dir)) != NULL;
         seen++) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) {
            continue;
        }
        struct stat st;
        if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            continue; /* gone meanwhile: nothing of ours to judge */
        }
        if (S_ISDIR(st.st_mode) && st.st_uid != privileges->uid) {
            rc = privileges_error(err, err_bytes, -EPERM,
                                  "data_dir %s/%s is owned by uid %u, but toasterd runs as uid "
                                  "%u: chown -R %u:%u %s",
                                  data_dir, entry->d_name, (unsigned)st.st_uid,
                                  (unsigned)privileges->uid, (unsigned)privileges->uid,
                                  (unsigned)privileges->gid, data_dir);
        }
    }
    (void)closedir(dir); /* a directory read: nothing to lose */
    return rc;
}

int
privileges_data_dir(const struct privileges *privileges, const char *data_dir, char *err,
                    size_t err_bytes)
{
    ASSERT(privileges != NULL && data_dir != NULL);
    struct stat st;
    if (stat(data_dir, &st) != 0) {
        if (errno != ENOENT) {
            return privileges_error(err, err_bytes, -errno, "data_dir %s: %s", data_dir,
                                    strerror(errno));
        }
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
            return privileges_error(err, err_bytes, -errno, "data_dir %s: mkdir: %s", data_dir,
                                    strerror(errno));
        }
        if (privileges->is_drop && chown(data_dir, privileges->uid, privileges->gid) != 0) {
            return privileges_error(err, err_bytes, -errno, "data_dir %s: chown to %s: %s",
                                    data_dir, privileges->user, strerror(errno));
        }
        if (stat(data_dir, &st) != 0) {
            return privileges_error(err, err_bytes, -errno, "data_dir %s: %s", data_dir,
                                    strerror(errno));
        }
    }
    if (!S_ISDIR(st.st_mode)) {
        return privileges_error(err, err_bytes, -ENOTDIR, "data_dir %s is not a directory",
                                data_dir);
    }
    if (st.st_uid != privileges->uid) {
        return privileges_error(err, err_bytes, -EPERM,
                                "data_dir %s is owned by uid %u, but toasterd runs as uid %u%s%s"
                                "%s: give it to that user (chown -R %u:%u %s) or set user",
                                data_dir, (unsigned)st.st_uid, (unsigned)privileges->uid,
                                privileges->user[0] ? " (" : "", privileges->user,
                                privileges->user[0] ? ")" : "", (unsigned)privileges->uid,
                                (unsigned)privileges->gid, data_dir);
    }
    return privileges_data_dir_children(privileges, data_dir, err, err_bytes);
}

int
privileges_files_as(const struct privileges *privileges, enum privileges_files as, char *err,
                    size_t err_bytes)
{
    ASSERT(privileges != NULL);
    if (!privileges->is_drop) {
        return 0;
    }
    uid_t uid = as == PRIVILEGES_FILES_USER ? privileges->uid : 0;
    gid_t gid = as == PRIVILEGES_FILES_USER ? privileges->gid : 0;
    /* The gid first: setfsgid needs CAP_SETGID, which the effective root
     * keeps whatever the file-system uid is. The calls report only the
     * previous id, so each is checked by asking again (-1 changes nothing). */
    (void)setfsgid(gid);
    (void)setfsuid(uid);
    if ((gid_t)setfsgid((gid_t)-1) != gid || (uid_t)setfsuid((uid_t)-1) != uid) {
        return privileges_error(err, err_bytes, -EPERM,
                                "cannot set the file-system ids to %u:%u", (unsigned)uid,
                                (unsigned)gid);
    }
    return 0;
}

int
privileges_chroot(const struct privileges *privileges, const char *root_dir, char *err,
                  size_t err_bytes)
{
    ASSERT(privileges != NULL && root_dir != NULL && root_dir[0] == '/');
    if (!privileges->is_drop) {
        return privileges_error(err, err_bytes, -EPERM,
                                "chroot = %s: toasterd must be started as root with user set",
                                root_dir);
    }
    /* The file-system ids decide the path walk: root's for the walk to
     * root_dir, the user's again for every file made after it. */
    int rc = privileges_files_as(privileges, PRIVILEGES_FILES_ROOT, err, err_bytes);
    if (rc != 0) {
        return rc;
    }
    if (chroot(root_dir) != 0) {
        int chroot_errno = errno;
        (void)privileges_files_as(privileges, PRIVILEGES_FILES_USER, NULL, 0);
        return privileges_error(err, err_bytes, -chroot_errno, "chroot(%s): %s", root_dir,
                                strerror(chroot_errno));
    }
    if (chdir("/") != 0) {
        return privileges_error(err, err_bytes, -errno, "chdir(/) in the chroot %s: %s",
                                root_dir, strerror(errno));
    }
    return privileges_files_as(privileges, PRIVILEGES_FILES_USER, err, err_bytes);
}

int
privileges_drop(const struct privileges *privileges, char *err, size_t err_bytes)
{
    ASSERT(privileges != NULL);
    if (!privileges->is_drop) {
        return 0;
    }
    ASSERT(privileges->uid != 0);
    ASSERT(privileges->group_count >= 1 && privileges->group_count <= PRIVILEGES_GROUPS_MAX);
    /* Groups before the gid, the gid before the uid: each needs root. */
    if (setgroups(privileges->group_count, privileges->groups) != 0) {
        return privileges_error(err, err_bytes, -errno, "setgroups: %s", strerror(errno));
    }
    gid_t gid = privileges->gid;
    uid_t uid = privileges->uid;
    if (setresgid(gid, gid, gid) != 0) {
        return privileges_error(err, err_bytes, -errno, "setresgid(%u): %s", (unsigned)gid,
                                strerror(errno));
    }
    if (setresuid(uid, uid, uid) != 0) {
        return privileges_error(err, err_bytes, -errno, "setresuid(%u): %s", (unsigned)uid,
                                strerror(errno));
    }
    uid_t ruid = 0, euid = 0, suid = 0;
    gid_t rgid = 0, egid = 0, sgid = 0;
    if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0) {
        return privileges_error(err, err_bytes, -errno, "getresuid: %s", strerror(errno));
    }
    if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid ||
        sgid != gid || (uid_t)setfsuid((uid_t)-1) != uid) {
        return privileges_error(err, err_bytes, -EPERM, "the ids did not all change to %u:%u",
                                (unsigned)uid, (unsigned)gid);
    }
    /* The point of it all: root must be gone for good. */
    if (setuid(0) == 0 || seteuid(0) == 0) {
        return privileges_error(err, err_bytes, -EPERM, "setuid(0) worked after the drop");
    }
    return 0;
}
