/*
 * store/maildir_dirs.c - open new/ directories of recently used Maildirs,
 * in an open-addressing table keyed by mailbox name (see maildir_dirs.h).
 */
#define _GNU_SOURCE
#include "store/maildir_dirs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/hash.h"
#include "store/recipients.h"
#include "store/spool.h"

#define MAILDIR_DIRS_REOPEN_NS UINT64_C(1000000000)

static_assert((MAILDIR_DIRS_SLOTS & (MAILDIR_DIRS_SLOTS - 1)) == 0, "power of two");

static struct {
    struct maildir_dir *slots;
    size_t              count;
    char                data_dir[SPOOL_PATH_BYTES];
    bool                is_fsync_on;
} dirs;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
maildir_dirs_init(const char *data_dir, bool is_fsync_on)
{
    ASSERT(dirs.slots == NULL);
    if ((size_t)snprintf(dirs.data_dir, sizeof(dirs.data_dir), "%s", data_dir) >=
        sizeof(dirs.data_dir)) {
        return -ENAMETOOLONG;
    }
    dirs.slots = calloc(MAILDIR_DIRS_SLOTS, sizeof(*dirs.slots));
    if (dirs.slots == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < MAILDIR_DIRS_SLOTS; i++) {
        dirs.slots[i].new_fd = -1;
    }
    dirs.count = 0;
    dirs.is_fsync_on = is_fsync_on;
    return 0;
}

int
maildir_dirs_path(const char *mailbox, char *path_out, size_t path_bytes)
{
    return recipients_maildir_path(dirs.data_dir, mailbox, path_out, path_bytes);
}

static int
fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    (void)close(fd);
    return rc;
}

/* mkdir that makes the new entry durable: the parent is synced after. */
static int
mkdir_durable(const char *path, const char *parent)
{
    if (mkdir(path, 0700) != 0) {
        return errno == EEXIST ? 0 : -errno;
    }
    return dirs.is_fsync_on ? fsync_path(parent) : 0;
}

/* Create <data_dir>/mail/<domain>/<local>/Maildir/{cur,new,tmp} as needed. */
static int
maildir_create(const char *maildir)
{
    char mail_root[SPOOL_PATH_BYTES];
    int n = snprintf(mail_root, sizeof(mail_root), "%s/mail", dirs.data_dir);
    ASSERT(n > 0 && (size_t)n < sizeof(mail_root));
    size_t root_len = (size_t)n;
    ASSERT(strncmp(maildir, mail_root, root_len) == 0);
    char path[SPOOL_PATH_BYTES];
    char parent[SPOOL_PATH_BYTES];
    size_t len = strlen(maildir);
    ASSERT(len < sizeof(path));
    /* Walk the components below mail/: domain, local part, Maildir. */
    for (size_t i = root_len + 1; i <= len; i++) {
        if (maildir[i] != '/' && maildir[i] != '\0') {
            continue;
        }
        memcpy(path, maildir, i);
        path[i] = '\0';
        char *slash = strrchr(path, '/');
        ASSERT(slash != NULL);
        memcpy(parent, path, (size_t)(slash - path));
        parent[slash - path] = '\0';
        int rc = mkdir_durable(path, parent);
        if (rc != 0) {
            return rc;
        }
    }
    static const char *const subdirs[] = { "cur", "new", "tmp" };
    for (size_t i = 0; i < 3; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", maildir, subdirs[i]) >=
            sizeof(path)) {
            return -ENAMETOOLONG;
        }
        int rc = mkdir_durable(path, maildir);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Open <Maildir>/new for mailbox, creating the Maildir when missing. */
static int
new_dir_open(const char *mailbox)
{
    char maildir[SPOOL_PATH_BYTES];
    char new_path[SPOOL_PATH_BYTES];
    int rc = maildir_dirs_path(mailbox, maildir, sizeof(maildir));
    if (rc != 0) {
        return rc;
    }
    if ((size_t)snprintf(new_path, sizeof(new_path), "%s/new", maildir) >= sizeof(new_path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(new_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        rc = maildir_create(maildir);
        if (rc != 0) {
            return rc;
        }
        fd = open(new_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    return fd >= 0 ? fd : -errno;
}

int
maildir_dirs_get(const char *mailbox, uint64_t batch, struct maildir_dir **dir_out)
{
    ASSERT(dirs.slots != NULL);
    uint32_t mask = MAILDIR_DIRS_SLOTS - 1;
    uint32_t i = (uint32_t)hash_fnv1a_string(mailbox) & mask;
    struct maildir_dir *dir = NULL;
    for (uint32_t probes = 0; probes <= mask; i = (i + 1) & mask, probes++) {
        dir = &dirs.slots[i];
        if (dir->mailbox == NULL || strcmp(dir->mailbox, mailbox) == 0) {
            break;
        }
    }
    ASSERT(dir != NULL);
    if (dir->mailbox == NULL) {
        /* The caller trims between batches, and one batch holds fewer
         * distinct mailboxes than half the table. */
        ASSERT(dirs.count < MAILDIR_DIRS_SLOTS / 2);
        dir->mailbox = strdup(mailbox);
        if (dir->mailbox == NULL) {
            return -ENOMEM;
        }
        dir->new_fd = -1;
        dir->batch_mark = 0;
        dir->sync_result = 0;
        dirs.count++;
    }
    uint64_t now = now_ns();
    if (dir->new_fd >= 0 && dir->batch_mark != batch &&
        now - dir->opened_ns >= MAILDIR_DIRS_REOPEN_NS) {
        maildir_dirs_forget(dir);
    }
    if (dir->new_fd < 0) {
        int fd = new_dir_open(mailbox);
        if (fd < 0) {
            return fd;
        }
        dir->new_fd = fd;
        dir->opened_ns = now;
    }
    *dir_out = dir;
    return 0;
}

void
maildir_dirs_forget(struct maildir_dir *dir)
{
    if (dir->new_fd >= 0) {
        (void)close(dir->new_fd); /* a directory opened read-only: nothing to lose */
        dir->new_fd = -1;
    }
}

static void
clear_all(void)
{
    for (size_t i = 0; i < MAILDIR_DIRS_SLOTS && dirs.count > 0; i++) {
        struct maildir_dir *dir = &dirs.slots[i];
        if (dir->mailbox != NULL) {
            maildir_dirs_forget(dir);
            free(dir->mailbox);
            dir->mailbox = NULL;
            dirs.count--;
        }
    }
    ASSERT(dirs.count == 0);
}

void
maildir_dirs_trim(void)
{
    /* Past the bound, start over: simpler than an LRU, and the cost (one
     * open per mailbox afterwards) is what every delivery paid without
     * the table. */
    if (dirs.count > MAILDIR_DIRS_KEEP) {
        clear_all();
    }
}

void
maildir_dirs_destroy(void)
{
    if (dirs.slots == NULL) {
        return;
    }
    clear_all();
    free(dirs.slots);
    dirs.slots = NULL;
}
