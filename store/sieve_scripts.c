/*
 * store/sieve_scripts.c - a user's Sieve scripts in Pigeonhole's layout
 * (see sieve_scripts.h). Every path is opened relative to the home
 * directory's descriptor, names are checked by the caller and never hold
 * "/", so nothing here can leave the user's home. Worker threads only.
 */
#define _GNU_SOURCE
#include "store/sieve_scripts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/fd_io.h"

#define SCRIPTS_DIR "sieve"
#define SCRIPTS_TMP_DIR "sieve/tmp"
#define ACTIVE_LINK ".dovecot.sieve"
#define SCRIPT_SUFFIX ".sieve"
#define ORIGINAL_NAME "dovecot.orig"
#define PATH_BYTES (SIEVE_SCRIPTS_NAME_BYTES + 32)

static int
home_open(const char *home)
{
    int fd = open(home, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* "sieve/NAME.sieve" into path. */
static int
script_path(const char *name, char *path, size_t path_bytes)
{
    int n = snprintf(path, path_bytes, SCRIPTS_DIR "/%s" SCRIPT_SUFFIX, name);
    return n < 0 || (size_t)n >= path_bytes ? -ENAMETOOLONG : 0;
}

/* mkdir that is happy when the directory exists. */
static int
dir_ensure(int home_fd, const char *path)
{
    if (mkdirat(home_fd, path, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static int
dir_sync(int home_fd, const char *path)
{
    int fd = openat(home_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    (void)close(fd);
    return rc;
}

/* The script name the active link points at ("" for none or a regular
 * file); *is_regular_out says the link is a regular file. */
static int
active_read(int home_fd, char *name_out, size_t name_bytes, bool *is_regular_out)
{
    *is_regular_out = false;
    name_out[0] = '\0';
    char target[PATH_BYTES];
    ssize_t n = readlinkat(home_fd, ACTIVE_LINK, target, sizeof(target) - 1);
    if (n < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        if (errno == EINVAL) { /* not a link: a hand-made script file */
            *is_regular_out = true;
            return 0;
        }
        return -errno;
    }
    target[n] = '\0';
    /* Pigeonhole writes "sieve/NAME.sieve"; an absolute or odd target is
     * an active script we do not manage by name. */
    const char *prefix = SCRIPTS_DIR "/";
    size_t prefix_len = strlen(prefix);
    size_t suffix_len = strlen(SCRIPT_SUFFIX);
    if ((size_t)n <= prefix_len + suffix_len || strncmp(target, prefix, prefix_len) != 0 ||
        strcmp(target + n - suffix_len, SCRIPT_SUFFIX) != 0) {
        return 0;
    }
    size_t name_len = (size_t)n - prefix_len - suffix_len;
    if (name_len >= name_bytes || memchr(target + prefix_len, '/', name_len) != NULL) {
        return 0;
    }
    memcpy(name_out, target + prefix_len, name_len);
    name_out[name_len] = '\0';
    return 0;
}

int
sieve_scripts_active(const char *home, char *name_out, size_t name_bytes)
{
    ASSERT(name_bytes > 0);
    int home_fd = home_open(home);
    if (home_fd < 0) {
        name_out[0] = '\0';
        return home_fd == -ENOENT ? 0 : home_fd;
    }
    bool is_regular;
    int rc = active_read(home_fd, name_out, name_bytes, &is_regular);
    (void)close(home_fd);
    return rc;
}

static int
entry_compare(const void *a, const void *b)
{
    return strcmp(((const struct sieve_scripts_entry *)a)->name,
                  ((const struct sieve_scripts_entry *)b)->name);
}

/* Visit each "NAME.sieve" regular file of the scripts directory. */
typedef int (*script_visit_fn)(void *arg, const char *name, size_t name_len, uint64_t size);

static int
scripts_visit(int home_fd, script_visit_fn visit, void *arg)
{
    int dir_fd = openat(home_fd, SCRIPTS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    DIR *dir = fdopendir(dir_fd);
    if (dir == NULL) {
        int rc = -errno;
        (void)close(dir_fd);
        return rc;
    }
    int rc = 0;
    size_t suffix_len = strlen(SCRIPT_SUFFIX);
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (entry->d_name[0] == '.' || len <= suffix_len ||
            strcmp(entry->d_name + len - suffix_len, SCRIPT_SUFFIX) != 0) {
            continue;
        }
        struct stat st;
        if (fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode)) {
            continue;
        }
        rc = visit(arg, entry->d_name, len - suffix_len, (uint64_t)st.st_size);
    }
    (void)closedir(dir);
    return rc;
}

struct list_walk {
    struct sieve_scripts_entry *entries;
    size_t max;
    size_t count;
};

static int
list_visit(void *arg, const char *name, size_t name_len, uint64_t size)
{
    (void)size;
    struct list_walk *walk = arg;
    if (walk->count >= walk->max || name_len >= SIEVE_SCRIPTS_NAME_BYTES) {
        return 0;
    }
    struct sieve_scripts_entry *entry = &walk->entries[walk->count++];
    memcpy(entry->name, name, name_len);
    entry->name[name_len] = '\0';
    entry->is_active = false;
    return 0;
}

int
sieve_scripts_list(const char *home, struct sieve_scripts_entry *entries, size_t entries_max)
{
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd == -ENOENT ? 0 : home_fd;
    }
    struct list_walk walk = { .entries = entries, .max = entries_max };
    int rc = scripts_visit(home_fd, list_visit, &walk);
    char active[SIEVE_SCRIPTS_NAME_BYTES];
    bool is_regular;
    if (rc == 0) {
        rc = active_read(home_fd, active, sizeof(active), &is_regular);
    }
    (void)close(home_fd);
    if (rc != 0) {
        return rc;
    }
    if (walk.count > 1) {
        qsort(entries, walk.count, sizeof(entries[0]), entry_compare);
    }
    for (size_t i = 0; i < walk.count; i++) {
        entries[i].is_active = strcmp(entries[i].name, active) == 0;
    }
    return (int)walk.count;
}

struct usage_walk {
    const char *name; /* the script being replaced: not counted */
    uint64_t bytes;
    uint32_t count;
    bool is_replacing;
};

static int
usage_visit(void *arg, const char *name, size_t name_len, uint64_t size)
{
    struct usage_walk *walk = arg;
    if (strlen(walk->name) == name_len && memcmp(walk->name, name, name_len) == 0) {
        walk->is_replacing = true;
        return 0;
    }
    walk->bytes += size;
    walk->count++;
    return 0;
}

static int
space_check(int home_fd, const char *name, uint64_t size,
            const struct sieve_scripts_limits *limits)
{
    if (limits->max_script_size > 0 && size > limits->max_script_size) {
        return -EFBIG;
    }
    if (limits->quota_max_scripts == 0 && limits->quota_max_storage == 0) {
        return 0;
    }
    struct usage_walk walk = { .name = name };
    int rc = scripts_visit(home_fd, usage_visit, &walk);
    if (rc != 0) {
        return rc;
    }
    if (limits->quota_max_scripts > 0 && walk.count + 1 > limits->quota_max_scripts) {
        return -EMLINK;
    }
    if (limits->quota_max_storage > 0 && walk.bytes + size > limits->quota_max_storage) {
        return -EDQUOT;
    }
    return 0;
}

int
sieve_scripts_have_space(const char *home, const char *name, uint64_t size,
                         const struct sieve_scripts_limits *limits)
{
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd;
    }
    int rc = space_check(home_fd, name, size, limits);
    (void)close(home_fd);
    return rc;
}

/* A name for a file in sieve/tmp/ no other writer picks. */
static void
tmp_name(char *out, size_t out_bytes)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    (void)snprintf(out, out_bytes, SCRIPTS_TMP_DIR "/%lld.%09ld.%d", (long long)now.tv_sec,
                   now.tv_nsec, (int)gettid());
}

int
sieve_scripts_put(const char *home, const char *name, const char *bytes, size_t len,
                  const struct sieve_scripts_limits *limits)
{
    char path[PATH_BYTES];
    int rc = script_path(name, path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd;
    }
    rc = space_check(home_fd, name, len, limits);
    if (rc == 0) {
        rc = dir_ensure(home_fd, SCRIPTS_DIR);
    }
    if (rc == 0) {
        rc = dir_ensure(home_fd, SCRIPTS_TMP_DIR);
    }
    char tmp[PATH_BYTES];
    tmp_name(tmp, sizeof(tmp));
    int fd = -1;
    if (rc == 0) {
        fd = openat(home_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        rc = fd < 0 ? -errno : 0;
    }
    if (rc == 0) {
        rc = fd_write_all(fd, bytes, len);
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(home_fd, tmp, home_fd, path) != 0) {
        rc = -errno;
    }
    if (rc != 0 && fd >= 0) {
        (void)unlinkat(home_fd, tmp, 0);
    }
    if (rc == 0) {
        rc = dir_sync(home_fd, SCRIPTS_DIR);
    }
    (void)close(home_fd);
    return rc;
}

int
sieve_scripts_get(const char *home, const char *name, uint64_t max_bytes, char **bytes_out,
                  size_t *len_out)
{
    char path[PATH_BYTES];
    int rc = script_path(name, path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd == -ENOENT ? -ENOENT : home_fd;
    }
    int fd = openat(home_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    rc = fd < 0 ? -errno : 0;
    (void)close(home_fd);
    if (rc != 0) {
        return rc == -ELOOP ? -ENOENT : rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -ENOENT;
    } else if ((uint64_t)st.st_size > max_bytes) {
        rc = -EFBIG;
    }
    char *bytes = NULL;
    if (rc == 0) {
        bytes = malloc((size_t)st.st_size + 1);
        rc = bytes == NULL ? -ENOMEM : fd_read_all(fd, bytes, (size_t)st.st_size);
    }
    (void)close(fd);
    if (rc != 0) {
        free(bytes);
        return rc;
    }
    bytes[st.st_size] = '\0';
    *bytes_out = bytes;
    *len_out = (size_t)st.st_size;
    return 0;
}

/* Point the active link at target ("sieve/NAME.sieve") by renaming a new
 * link over it. */
static int
link_replace(int home_fd, const char *target)
{
    char tmp[PATH_BYTES];
    tmp_name(tmp, sizeof(tmp));
    int rc = dir_ensure(home_fd, SCRIPTS_DIR);
    if (rc == 0) {
        rc = dir_ensure(home_fd, SCRIPTS_TMP_DIR);
    }
    if (rc == 0 && symlinkat(target, home_fd, tmp) != 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(home_fd, tmp, home_fd, ACTIVE_LINK) != 0) {
        rc = -errno;
        (void)unlinkat(home_fd, tmp, 0);
    }
    if (rc == 0 && fsync(home_fd) != 0) {
        rc = -errno;
    }
    return rc;
}

static bool
script_exists(int home_fd, const char *path)
{
    struct stat st;
    return fstatat(home_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

/* A hand-made regular .dovecot.sieve is kept, moved in as
 * sieve/dovecot.orig.sieve, before the active link takes its place. */
static int
original_keep(int home_fd)
{
    char original[PATH_BYTES];
    int rc = script_path(ORIGINAL_NAME, original, sizeof(original));
    if (rc == 0) {
        rc = dir_ensure(home_fd, SCRIPTS_DIR);
    }
    if (rc == 0 && renameat(home_fd, ACTIVE_LINK, home_fd, original) != 0) {
        rc = -errno;
    }
    return rc;
}

int
sieve_scripts_set_active(const char *home, const char *name)
{
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd;
    }
    char active[SIEVE_SCRIPTS_NAME_BYTES];
    bool is_regular;
    int rc = active_read(home_fd, active, sizeof(active), &is_regular);
    if (rc == 0 && name[0] == '\0') {
        /* Deactivate. */
        if (is_regular) {
            rc = original_keep(home_fd);
        } else if (unlinkat(home_fd, ACTIVE_LINK, 0) != 0 && errno != ENOENT) {
            rc = -errno;
        }
        if (rc == 0 && fsync(home_fd) != 0) {
            rc = -errno;
        }
        (void)close(home_fd);
        return rc;
    }
    char path[PATH_BYTES];
    if (rc == 0) {
        rc = script_path(name, path, sizeof(path));
    }
    if (rc == 0 && !script_exists(home_fd, path)) {
        rc = -ENOENT;
    }
    if (rc == 0 && is_regular) {
        rc = original_keep(home_fd);
    }
    if (rc == 0) {
        rc = link_replace(home_fd, path);
    }
    (void)close(home_fd);
    return rc;
}

int
sieve_scripts_delete(const char *home, const char *name)
{
    char path[PATH_BYTES];
    int rc = script_path(name, path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd == -ENOENT ? -ENOENT : home_fd;
    }
    char active[SIEVE_SCRIPTS_NAME_BYTES];
    bool is_regular;
    rc = active_read(home_fd, active, sizeof(active), &is_regular);
    if (rc == 0 && strcmp(active, name) == 0) {
        rc = -EBUSY;
    }
    if (rc == 0 && !script_exists(home_fd, path)) {
        rc = -ENOENT;
    }
    if (rc == 0 && unlinkat(home_fd, path, 0) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = dir_sync(home_fd, SCRIPTS_DIR);
    }
    (void)close(home_fd);
    return rc;
}

int
sieve_scripts_rename(const char *home, const char *old_name, const char *new_name)
{
    char old_path[PATH_BYTES];
    char new_path[PATH_BYTES];
    int rc = script_path(old_name, old_path, sizeof(old_path));
    if (rc == 0) {
        rc = script_path(new_name, new_path, sizeof(new_path));
    }
    if (rc != 0) {
        return rc;
    }
    int home_fd = home_open(home);
    if (home_fd < 0) {
        return home_fd == -ENOENT ? -ENOENT : home_fd;
    }
    char active[SIEVE_SCRIPTS_NAME_BYTES];
    bool is_regular;
    rc = active_read(home_fd, active, sizeof(active), &is_regular);
    if (rc == 0 && !script_exists(home_fd, old_path)) {
        rc = -ENOENT;
    }
    if (rc == 0 && renameat2(home_fd, old_path, home_fd, new_path, RENAME_NOREPLACE) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = dir_sync(home_fd, SCRIPTS_DIR);
    }
    /* The link follows its script; between the two renames delivery finds
     * a dangling link and keeps the message, which is Pigeonhole's
     * behaviour for a missing active script too. */
    if (rc == 0 && strcmp(active, old_name) == 0) {
        rc = link_replace(home_fd, new_path);
    }
    (void)close(home_fd);
    return rc;
}
