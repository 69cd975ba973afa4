/*
 * store/maildir_folders.c - Maildir++ folders of one mail root: name
 * rules, listing, create, delete, rename, default folders (the contract
 * is in maildir_folders.h).
 *
 * Owns nothing between calls. Every call works on the root through one
 * O_DIRECTORY descriptor and *at() calls, so a folder name is only ever
 * one directory entry of the root. Runs on worker threads: it blocks on
 * the file system and allocates. Limits: MAILDIR_FOLDERS_* (see the
 * header).
 */
#define _GNU_SOURCE
#include "store/maildir_folders.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"
#include "core/mutf7.h"
#include "store/maildir_dotlock.h"
#include "store/maildir_keywords.h"
#include "store/maildir_subscriptions.h"

static_assert(MAILDIR_FOLDERS_NAME_BYTES_MAX + 1 <= NAME_MAX, "'.' + name must fit NAME_MAX");
static_assert(MAILDIR_FOLDERS_NAME_BYTES_MAX <= MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX,
              "every folder name can be subscribed");
static_assert(MAILDIR_FOLDERS_ROOT_ENTRIES_MAX > MAILDIR_FOLDERS_MAX,
              "a root holding the most folders can be read");

#define ENTRY_BYTES (NAME_MAX + 1)
#define CREATE_PREFIX "..toaster-create."
#define KEYWORDS_FILE_NAME MAILDIR_KEYWORDS_FILE_NAME
/* A subscriptions file holding the most names at their longest. */
#define SUBSCRIPTIONS_FILE_BYTES_MAX                                                               \
    ((size_t)MAILDIR_SUBSCRIPTIONS_MAX * (MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1) + 16)

static const char *const default_names[] = {"Sent", "Drafts", "Junk", "Trash"};

/* Build directories get process-unique names. */
static atomic_ulong create_counter;

struct name_vec {
    char **names; /* storage names (the entry without its leading '.') */
    size_t count;
    size_t capacity;
};

static int entry_build(const char *name, char out[ENTRY_BYTES], bool *is_inbox_out);
static size_t clamp_max(size_t folders_max);
static int root_open(const char *root, int *fd_out);
static int root_scan(int root_fd, const char *prefix, size_t prefix_len, size_t max,
                     struct name_vec *out, size_t *count_out);
static bool entry_is_listable(const char *entry);
static int name_vec_push(struct name_vec *vec, const char *name, size_t len);
static void name_vec_free(struct name_vec *vec);
static int cmp_names(const void *a, const void *b);
static bool sorted_contains(char *const *names, size_t count, const char *name);
static bool sorted_has_prefix(char *const *names, size_t count, const char *prefix);
static int folder_exists(int root_fd, const char *entry);
static int create_at(int root_fd, const char *entry, size_t folders_max);
static int build_folder(int root_fd, const char *tmp_name);
static int rename_noreplace(int from_fd, const char *from, int to_fd, const char *to);
static int fsync_dir(int fd);
static int tree_remove(int parent_fd, const char *name, unsigned depth, size_t *budget);
static int trash_take(int root_fd, const char *entry);
static int rename_inbox(int root_fd, const char *new_entry, size_t folders_max);
static int move_messages(int root_fd, int target_fd, const char *sub, size_t *budget);
static int copy_keywords(int root_fd, int target_fd);
static int read_small(int dir_fd, const char *name, size_t bytes_max, char **buf_out,
                      size_t *len_out);
static int subscribe_locked(int root_fd, int lock_fd, const char *const *names, size_t count,
                            bool is_remove);

int
maildir_folders_name_check(const char *name, size_t len)
{
    if (len > 0) {
        ASSERT(name != NULL);
    }
    if (len == 0) {
        return -EINVAL;
    }
    if (len > MAILDIR_FOLDERS_NAME_BYTES_MAX) {
        return -ENAMETOOLONG;
    }
    const unsigned char *s = (const unsigned char *)name;
    if (s[0] == '.' || s[len - 1] == '.' || s[0] == '~') {
        return -EINVAL;
    }
    size_t levels = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c >= 0x7f || c == '/') {
            return -EINVAL;
        }
        if (c == '.') {
            if (s[i + 1] == '.') {
                return -EINVAL; /* i + 1 < len: the last byte is not '.' */
            }
            levels++;
        }
    }
    if (!mutf7_is_valid(span_make((const char *)s, len))) {
        return -EINVAL;
    }
    if (levels > MAILDIR_FOLDERS_DEPTH_MAX) {
        return -ENAMETOOLONG;
    }
    return 0;
}

bool
maildir_folders_is_inbox(const char *name, size_t len)
{
    ASSERT(name != NULL || len == 0);
    return len == 5 && strncasecmp(name, "INBOX", 5) == 0;
}

int
maildir_folders_path(const char *root, const char *name, char *out, size_t out_bytes)
{
    ASSERT(root != NULL);
    ASSERT(name != NULL);
    ASSERT(out != NULL || out_bytes == 0);
    if (out_bytes > 0) {
        out[0] = '\0';
    }
    char entry[ENTRY_BYTES];
    bool is_inbox;
    int rc = entry_build(name, entry, &is_inbox);
    if (rc != 0) {
        return rc;
    }
    int n = is_inbox ? snprintf(out, out_bytes, "%s", root)
                     : snprintf(out, out_bytes, "%s/%s", root, entry);
    if (n < 0 || (size_t)n >= out_bytes) {
        if (out_bytes > 0) {
            out[0] = '\0';
        }
        return -ENAMETOOLONG;
    }
    return 0;
}

int
maildir_folders_list(const char *root, size_t folders_max, struct maildir_folder_list *out)
{
    ASSERT(root != NULL);
    ASSERT(out != NULL);
    out->folders = NULL;
    out->count = 0;
    size_t max = clamp_max(folders_max);
    int root_fd = -1;
    int rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    struct name_vec real = {0};
    struct name_vec missing = {0};
    char **all = NULL; /* real + missing, sorted; borrowed pointers */
    bool *is_missing = NULL;
    rc = root_scan(root_fd, NULL, 0, max, &real, NULL);
    if (rc != 0) {
        goto out;
    }
    if (real.count > 1) {
        qsort(real.names, real.count, sizeof(real.names[0]), cmp_names);
    }

    /* Parents that exist only through a child: every proper prefix P at a
     * '.' that is not a folder itself (INBOX always is). The names under
     * "P." are contiguous in sorted order, so P was already seen if the
     * previous name is under "P." too. */
    char prefix[MAILDIR_FOLDERS_NAME_BYTES_MAX + 2];
    for (size_t i = 0; i < real.count; i++) {
        const char *name = real.names[i];
        for (const char *dot = strchr(name, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
            size_t len = (size_t)(dot - name);
            memcpy(prefix, name, len + 1); /* with the '.' */
            prefix[len + 1] = '\0';
            if (i > 0 && strncmp(real.names[i - 1], prefix, len + 1) == 0) {
                continue;
            }
            prefix[len] = '\0';
            if (maildir_folders_is_inbox(prefix, len) ||
                sorted_contains(real.names, real.count, prefix)) {
                continue;
            }
            if (missing.count >= max) {
                rc = -E2BIG;
                goto out;
            }
            rc = name_vec_push(&missing, prefix, len);
            if (rc != 0) {
                goto out;
            }
        }
    }
    if (missing.count > 1) {
        qsort(missing.names, missing.count, sizeof(missing.names[0]), cmp_names);
    }

    size_t total = real.count + missing.count;
    all = calloc(total + 1, sizeof(all[0]));
    is_missing = calloc(total + 1, sizeof(is_missing[0]));
    out->folders = calloc(total + 1, sizeof(out->folders[0]));
    if (all == NULL || is_missing == NULL || out->folders == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    struct maildir_folder *inbox = &out->folders[0];
    inbox->name = strdup("INBOX");
    if (inbox->name == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    out->count = 1;
    /* Merge; the two never hold the same name. */
    size_t ri = 0;
    size_t mi = 0;
    for (size_t k = 0; k < total; k++) {
        if (mi == missing.count ||
            (ri < real.count && strcmp(real.names[ri], missing.names[mi]) < 0)) {
            all[k] = real.names[ri++];
        } else {
            is_missing[k] = true;
            all[k] = missing.names[mi++];
        }
    }

    struct stat st;
    inbox->name_len = 5;
    inbox->is_inbox = true;
    inbox->has_children = sorted_has_prefix(all, total, "INBOX.");
    inbox->is_selectable = fstatat(root_fd, "cur", &st, 0) == 0 && S_ISDIR(st.st_mode) &&
                           fstatat(root_fd, "new", &st, 0) == 0 && S_ISDIR(st.st_mode);
    for (size_t k = 0; k < total; k++) {
        struct maildir_folder *f = &out->folders[1 + k];
        const char *name = all[k];
        size_t len = strlen(name);
        f->name_len = len;
        f->special_use = maildir_folders_special_use(name);
        f->is_nonexistent = is_missing[k];
        memcpy(prefix, name, len);
        prefix[len] = '.';
        prefix[len + 1] = '\0';
        f->has_children = sorted_has_prefix(all + k + 1, total - k - 1, prefix);
        if (!f->is_nonexistent) {
            char probe[ENTRY_BYTES + 4];
            int n = snprintf(probe, sizeof(probe), ".%s/cur", name);
            ASSERT(n > 0 && (size_t)n < sizeof(probe));
            bool has_cur =
                fstatat(root_fd, probe, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
            n = snprintf(probe, sizeof(probe), ".%s/new", name);
            ASSERT(n > 0 && (size_t)n < sizeof(probe));
            f->is_selectable = has_cur && fstatat(root_fd, probe, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                               S_ISDIR(st.st_mode);
        }
    }
    /* Every string moves into the output. */
    for (size_t k = 0; k < total; k++) {
        out->folders[1 + k].name = all[k];
    }
    out->count = 1 + total;
    real.count = 0;
    missing.count = 0;

out:
    free(all);
    free(is_missing);
    name_vec_free(&real);
    name_vec_free(&missing);
    (void)close(root_fd);
    if (rc != 0) {
        maildir_folders_list_free(out);
    }
    return rc;
}

void
maildir_folders_list_free(struct maildir_folder_list *list)
{
    if (list == NULL) {
        return;
    }
    if (list->folders != NULL) {
        for (size_t i = 0; i < list->count; i++) {
            free(list->folders[i].name);
        }
    }
    free(list->folders);
    list->folders = NULL;
    list->count = 0;
}

int
maildir_folders_create(const char *root, const char *name, size_t folders_max)
{
    ASSERT(root != NULL);
    ASSERT(name != NULL);
    char entry[ENTRY_BYTES];
    bool is_inbox;
    int rc = entry_build(name, entry, &is_inbox);
    if (rc != 0) {
        return rc;
    }
    if (is_inbox) {
        return -EEXIST;
    }
    int root_fd = -1;
    rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    rc = create_at(root_fd, entry, clamp_max(folders_max));
    if (rc != 0 && rc != -EEXIST && rc != -EDQUOT) {
        log_error("maildir folders %s: cannot create %s: %s", root, entry, strerror(-rc));
    }
    (void)close(root_fd);
    return rc;
}

int
maildir_folders_delete(const char *root, const char *name)
{
    ASSERT(root != NULL);
    ASSERT(name != NULL);
    char entry[ENTRY_BYTES];
    bool is_inbox;
    int rc = entry_build(name, entry, &is_inbox);
    if (rc != 0) {
        return rc;
    }
    if (is_inbox) {
        return -EPERM;
    }
    int root_fd = -1;
    rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    rc = folder_exists(root_fd, entry);
    if (rc == 0) {
        rc = -ENOENT;
    }
    if (rc < 0) {
        goto out;
    }
    /* Children: any folder ".<name>.*". */
    char prefix[ENTRY_BYTES + 1];
    size_t entry_len = strlen(entry);
    memcpy(prefix, entry + 1, entry_len - 1);
    prefix[entry_len - 1] = '.';
    prefix[entry_len] = '\0';
    size_t child_count = 0;
    rc = root_scan(root_fd, prefix, entry_len, 1, NULL, &child_count);
    if (child_count > 0) {
        rc = -ENOTEMPTY; /* one is enough: the scan stops at the second */
    }
    if (rc != 0) {
        goto out;
    }
    rc = trash_take(root_fd, entry);
    if (rc != 0) {
        if (rc != -ENOENT) {
            log_error("maildir folders %s: cannot move %s to " MAILDIR_FOLDERS_TRASH_NAME ": %s",
                      root, entry, strerror(-rc));
        }
        goto out;
    }
    rc = fsync_dir(root_fd);
    if (rc != 0) {
        log_error("maildir folders %s: fsync after deleting %s: %s", root, entry, strerror(-rc));
        goto out;
    }
    /* The folder is gone now; what follows only frees space. */
    size_t budget = MAILDIR_FOLDERS_TRASH_ENTRIES_MAX;
    int trc = tree_remove(root_fd, MAILDIR_FOLDERS_TRASH_NAME, 0, &budget);
    if (trc != 0) {
        log_warning("maildir folders %s: " MAILDIR_FOLDERS_TRASH_NAME
                    " of %s not removed (left for the next delete): %s",
                    root, entry, strerror(-trc));
    }
    rc = 0;
out:
    (void)close(root_fd);
    return rc;
}

int
maildir_folders_rename(const char *root, const char *old_name, const char *new_name,
                       size_t folders_max)
{
    ASSERT(root != NULL);
    ASSERT(old_name != NULL);
    ASSERT(new_name != NULL);
    char old_entry[ENTRY_BYTES];
    char new_entry[ENTRY_BYTES];
    bool is_old_inbox;
    bool is_new_inbox;
    int rc = entry_build(old_name, old_entry, &is_old_inbox);
    if (rc != 0) {
        return rc;
    }
    rc = entry_build(new_name, new_entry, &is_new_inbox);
    if (rc != 0) {
        return rc;
    }
    if (is_new_inbox) {
        return -EEXIST;
    }
    size_t max = clamp_max(folders_max);
    size_t old_len = strlen(old_entry);
    size_t new_len = strlen(new_entry);
    if (!is_old_inbox && new_len > old_len && memcmp(new_entry, old_entry, old_len) == 0 &&
        new_entry[old_len] == '.') {
        return -EINVAL;
    }
    int root_fd = -1;
    rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    struct name_vec children = {0};
    size_t done = 0;
    bool is_old_done = false;
    if (is_old_inbox) {
        rc = rename_inbox(root_fd, new_entry, max);
        goto out;
    }
    rc = folder_exists(root_fd, old_entry);
    if (rc == 0) {
        rc = -ENOENT;
    }
    if (rc < 0) {
        goto out;
    }
    struct stat st;
    if (fstatat(root_fd, new_entry, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        rc = -EEXIST;
        goto out;
    }
    if (errno != ENOENT) {
        rc = -errno;
        goto out;
    }
    char prefix[ENTRY_BYTES + 1];
    memcpy(prefix, old_entry + 1, old_len - 1);
    prefix[old_len - 1] = '.';
    prefix[old_len] = '\0';
    rc = root_scan(root_fd, prefix, old_len, max, &children, NULL);
    if (rc != 0) {
        goto out;
    }
    /* Check every target before the first rename. children hold
     * "old.x"; the target entry is new_entry + ".x". */
    char target[ENTRY_BYTES];
    for (size_t i = 0; i < children.count; i++) {
        const char *suffix = children.names[i] + (old_len - 1);
        size_t suffix_len = strlen(suffix);
        if (new_len + suffix_len > NAME_MAX) {
            rc = -ENAMETOOLONG;
            goto out;
        }
        memcpy(target, new_entry, new_len);
        memcpy(target + new_len, suffix, suffix_len + 1);
        rc = maildir_folders_name_check(target + 1, new_len + suffix_len - 1);
        if (rc != 0) {
            goto out;
        }
        if (fstatat(root_fd, target, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            rc = -EEXIST;
            goto out;
        }
        if (errno != ENOENT) {
            rc = -errno;
            goto out;
        }
    }
    rc = rename_noreplace(root_fd, old_entry, root_fd, new_entry);
    if (rc != 0) {
        goto out;
    }
    is_old_done = true;
    char source[ENTRY_BYTES];
    for (; done < children.count; done++) {
        const char *suffix = children.names[done] + (old_len - 1);
        int n = snprintf(source, sizeof(source), ".%s", children.names[done]);
        ASSERT(n > 0 && (size_t)n < sizeof(source));
        n = snprintf(target, sizeof(target), "%s%s", new_entry, suffix);
        ASSERT(n > 0 && (size_t)n < sizeof(target));
        rc = rename_noreplace(root_fd, source, root_fd, target);
        if (rc == -ENOENT) {
            rc = 0; /* renamed or deleted meanwhile by someone else */
            continue;
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0) {
        rc = fsync_dir(root_fd);
        if (rc == 0) {
            is_old_done = false;
            done = 0;
        }
    }
out:
    if (rc != 0 && is_old_done) {
        /* Put back what moved, so a failed RENAME changes nothing. */
        log_error("maildir folders %s: rename %s -> %s failed (%s); undoing", root, old_entry,
                  new_entry, strerror(-rc));
        while (done > 0) {
            done--;
            const char *suffix = children.names[done] + (old_len - 1);
            int n = snprintf(source, sizeof(source), ".%s", children.names[done]);
            ASSERT(n > 0 && (size_t)n < sizeof(source));
            n = snprintf(target, sizeof(target), "%s%s", new_entry, suffix);
            ASSERT(n > 0 && (size_t)n < sizeof(target));
            (void)rename_noreplace(root_fd, target, root_fd, source); /* best effort */
        }
        (void)rename_noreplace(root_fd, new_entry, root_fd, old_entry); /* best effort */
        (void)fsync_dir(root_fd); /* best effort: the error is what we report */
    }
    name_vec_free(&children);
    (void)close(root_fd);
    return rc;
}

const char *
maildir_folders_special_use(const char *name)
{
    ASSERT(name != NULL);
    static const struct {
        const char *name;
        const char *flag;
    } table[] = {
        {"Sent", "\\Sent"},   {"Drafts", "\\Drafts"},   {"Junk", "\\Junk"},
        {"Trash", "\\Trash"}, {"Archive", "\\Archive"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(name, table[i].name) == 0) {
            return table[i].flag;
        }
    }
    return NULL;
}

int
maildir_folders_ensure_defaults(const char *root)
{
    ASSERT(root != NULL);
    enum { DEFAULT_COUNT = sizeof(default_names) / sizeof(default_names[0]) };
    int root_fd = -1;
    int rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    const char *missing[DEFAULT_COUNT];
    size_t missing_count = 0;
    char entry[ENTRY_BYTES];
    for (size_t i = 0; i < DEFAULT_COUNT; i++) {
        int n = snprintf(entry, sizeof(entry), ".%s", default_names[i]);
        ASSERT(n > 0 && (size_t)n < sizeof(entry));
        struct stat st;
        if (fstatat(root_fd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            continue;
        }
        if (errno != ENOENT) {
            rc = -errno;
            goto out;
        }
        missing[missing_count++] = default_names[i];
    }
    if (missing_count == 0) {
        goto out;
    }
    /* Lock first, so a held lock changes nothing (-EAGAIN). */
    int lock_fd;
    rc = maildir_dotlock_take(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME,
                              MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S, time(NULL), &lock_fd);
    if (rc != 0) {
        goto out;
    }
    const char *created[DEFAULT_COUNT];
    size_t created_count = 0;
    int first_error = 0;
    for (size_t i = 0; i < missing_count; i++) {
        int n = snprintf(entry, sizeof(entry), ".%s", missing[i]);
        ASSERT(n > 0 && (size_t)n < sizeof(entry));
        int crc = create_at(root_fd, entry, MAILDIR_FOLDERS_MAX);
        if (crc == 0) {
            created[created_count++] = missing[i];
        } else if (crc != -EEXIST && first_error == 0) {
            /* -EEXIST: made meanwhile by someone else, who subscribes it. */
            log_error("maildir folders %s: cannot create %s: %s", root, entry, strerror(-crc));
            first_error = crc;
        }
    }
    rc = subscribe_locked(root_fd, lock_fd, created, created_count, false);
    if (rc != 0) {
        log_error("maildir folders %s: cannot subscribe the default folders: %s", root,
                  strerror(-rc));
    }
    if (rc == 0) {
        rc = first_error;
    }
out:
    (void)close(root_fd);
    return rc;
}

int
maildir_folders_subscribe(const char *root, const char *name, bool is_subscribe)
{
    ASSERT(root != NULL && name != NULL);
    int root_fd = -1;
    int rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    int lock_fd;
    rc = maildir_dotlock_take(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME,
                              MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S, time(NULL), &lock_fd);
    if (rc == 0) {
        rc = subscribe_locked(root_fd, lock_fd, &name, 1, !is_subscribe);
    }
    (void)close(root_fd);
    return rc;
}

int
maildir_folders_subscriptions_read(const char *root, struct maildir_subscriptions *subs)
{
    ASSERT(root != NULL && subs != NULL);
    int root_fd = -1;
    int rc = root_open(root, &root_fd);
    if (rc != 0) {
        return rc;
    }
    char *file = NULL;
    size_t file_len = 0;
    rc = read_small(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME, SUBSCRIPTIONS_FILE_BYTES_MAX, &file,
                    &file_len);
    if (rc == 0) {
        rc = maildir_subscriptions_parse(subs, file, file_len, '.', NULL);
    } else if (rc == -ENOENT) {
        rc = 0;
    }
    free(file);
    (void)close(root_fd);
    return rc;
}

/* ".name", with a first level "inbox" in any case spelled "INBOX". */
static int
entry_build(const char *name, char out[ENTRY_BYTES], bool *is_inbox_out)
{
    size_t len = strnlen(name, MAILDIR_FOLDERS_NAME_BYTES_MAX + 1);
    int rc = maildir_folders_name_check(name, len);
    if (rc != 0) {
        return rc;
    }
    *is_inbox_out = maildir_folders_is_inbox(name, len);
    out[0] = '.';
    memcpy(out + 1, name, len);
    out[len + 1] = '\0';
    if (len > 6 && strncasecmp(name, "INBOX.", 6) == 0) {
        memcpy(out + 1, "INBOX", 5);
    }
    return 0;
}

static size_t
clamp_max(size_t folders_max)
{
    if (folders_max == 0 || folders_max > MAILDIR_FOLDERS_MAX) {
        return MAILDIR_FOLDERS_MAX;
    }
    return folders_max;
}

static int
root_open(const char *root, int *fd_out)
{
    /* The root itself may be a symlink: that is the operator's choice. */
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    *fd_out = fd;
    return 0;
}

/* Reads the root's folder directories whose storage name starts with
 * prefix (NULL: all). Collects them into out (if not NULL) and counts them
 * into *count_out (if not NULL). More than max: -E2BIG. */
static int
root_scan(int root_fd, const char *prefix, size_t prefix_len, size_t max, struct name_vec *out,
          size_t *count_out)
{
    int fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;
        (void)close(fd);
        return -err;
    }
    int rc = 0;
    size_t count = 0;
    size_t entries = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                rc = -errno;
            }
            break;
        }
        if (++entries > MAILDIR_FOLDERS_ROOT_ENTRIES_MAX) {
            rc = -E2BIG;
            break;
        }
        if (!entry_is_listable(de->d_name)) {
            continue;
        }
        const char *name = de->d_name + 1;
        size_t len = strlen(name);
        if (prefix != NULL && (len < prefix_len || memcmp(name, prefix, prefix_len) != 0)) {
            continue;
        }
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(root_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue; /* removed meanwhile */
                }
                rc = -errno;
                break;
            }
            is_dir = S_ISDIR(st.st_mode);
        }
        if (!is_dir) {
            continue;
        }
        if (++count > max) {
            rc = -E2BIG;
            break;
        }
        if (out != NULL) {
            rc = name_vec_push(out, name, len);
            if (rc != 0) {
                break;
            }
        }
    }
    (void)closedir(dir);
    if (count_out != NULL) {
        *count_out = count;
    }
    return rc;
}

/* Whether a root entry names a folder (before looking at its type). */
static bool
entry_is_listable(const char *entry)
{
    if (entry[0] != '.' || entry[1] == '\0' || entry[1] == '.') {
        return false;
    }
    const char *name = entry + 1;
    size_t len = strlen(name);
    if (maildir_folders_name_check(name, len) != 0 || maildir_folders_is_inbox(name, len)) {
        return false;
    }
    /* "inbox.x" on disk would be reached by no name: entry_build() spells
     * it "INBOX.x". */
    if (len > 6 && strncasecmp(name, "INBOX.", 6) == 0 && memcmp(name, "INBOX.", 6) != 0) {
        return false;
    }
    return true;
}

static int
name_vec_push(struct name_vec *vec, const char *name, size_t len)
{
    if (vec->count == vec->capacity) {
        size_t cap = vec->capacity == 0 ? 16 : vec->capacity * 2;
        char **p = realloc(vec->names, cap * sizeof(vec->names[0]));
        if (p == NULL) {
            return -ENOMEM;
        }
        vec->names = p;
        vec->capacity = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    vec->names[vec->count++] = copy;
    return 0;
}

static void
name_vec_free(struct name_vec *vec)
{
    if (vec->names != NULL) {
        for (size_t i = 0; i < vec->count; i++) {
            free(vec->names[i]);
        }
    }
    free(vec->names);
    vec->names = NULL;
    vec->count = 0;
    vec->capacity = 0;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* First index whose name is >= key (bytewise). */
static size_t
lower_bound(char *const *names, size_t count, const char *key)
{
    size_t lo = 0;
    size_t hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2; /* rounds down */
        if (strcmp(names[mid], key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static bool
sorted_contains(char *const *names, size_t count, const char *name)
{
    size_t i = lower_bound(names, count, name);
    return i < count && strcmp(names[i], name) == 0;
}

/* Any name starting with prefix: the first name >= prefix is one if any
 * is (every name with the prefix sorts at or after it). */
static bool
sorted_has_prefix(char *const *names, size_t count, const char *prefix)
{
    size_t i = lower_bound(names, count, prefix);
    return i < count && strncmp(names[i], prefix, strlen(prefix)) == 0;
}

/* 1 if entry is a directory, 0 if missing or not a directory, -errno. */
static int
folder_exists(int root_fd, const char *entry)
{
    struct stat st;
    if (fstatat(root_fd, entry, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    return S_ISDIR(st.st_mode) ? 1 : 0;
}

static int
create_at(int root_fd, const char *entry, size_t folders_max)
{
    struct stat st;
    if (fstatat(root_fd, entry, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return -EEXIST;
    }
    if (errno != ENOENT) {
        return -errno;
    }
    size_t count = 0;
    int rc = root_scan(root_fd, NULL, 0, folders_max, NULL, &count);
    if (rc == -E2BIG || (rc == 0 && count >= folders_max)) {
        return -EDQUOT;
    }
    if (rc != 0) {
        return rc;
    }
    char tmp_name[64];
    int n = snprintf(tmp_name, sizeof(tmp_name), CREATE_PREFIX "%ld.%lu", (long)getpid(),
                     atomic_fetch_add(&create_counter, 1));
    ASSERT(n > 0 && (size_t)n < sizeof(tmp_name));
    rc = build_folder(root_fd, tmp_name);
    if (rc == -EEXIST) {
        /* Left by a crashed process that had our pid: no one else uses it. */
        size_t budget = MAILDIR_FOLDERS_TRASH_ENTRIES_MAX;
        rc = tree_remove(root_fd, tmp_name, 0, &budget);
        if (rc == 0) {
            rc = build_folder(root_fd, tmp_name);
        }
    }
    if (rc == 0) {
        rc = rename_noreplace(root_fd, tmp_name, root_fd, entry);
    }
    if (rc == 0) {
        rc = fsync_dir(root_fd);
        if (rc != 0) {
            /* The folder is there, but not known to be durable: take it
             * back rather than report a failure and keep it. */
            size_t budget = MAILDIR_FOLDERS_TRASH_ENTRIES_MAX;
            (void)tree_remove(root_fd, entry, 0, &budget); /* best effort */
        }
        return rc;
    }
    size_t budget = MAILDIR_FOLDERS_TRASH_ENTRIES_MAX;
    (void)tree_remove(root_fd, tmp_name, 0, &budget); /* best effort; hidden anyway */
    return rc;
}

/* mkdir tmp_name with cur/ new/ tmp/ and maildirfolder, fsynced. */
static int
build_folder(int root_fd, const char *tmp_name)
{
    if (mkdirat(root_fd, tmp_name, 0700) != 0) {
        return -errno;
    }
    int fd = openat(root_fd, tmp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        if (mkdirat(fd, subs[i], 0700) != 0) {
            rc = -errno;
        }
    }
    if (rc == 0) {
        int mfd = openat(fd, MAILDIR_FOLDERS_MARKER_NAME,
                         O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (mfd < 0) {
            rc = -errno;
        } else if (close(mfd) != 0) {
            rc = -errno;
        }
    }
    if (rc == 0) {
        rc = fsync_dir(fd);
    }
    (void)close(fd);
    return rc;
}

static int
rename_noreplace(int from_fd, const char *from, int to_fd, const char *to)
{
    if (renameat2(from_fd, from, to_fd, to, RENAME_NOREPLACE) == 0) {
        return 0;
    }
    if (errno != EINVAL && errno != ENOSYS) {
        return errno == ENOTEMPTY ? -EEXIST : -errno;
    }
    /* No RENAME_NOREPLACE here: look first, then rename. The window can
     * only replace an empty directory (a folder has cur/ new/ tmp/). */
    struct stat st;
    if (fstatat(to_fd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        return -EEXIST;
    }
    if (errno != ENOENT) {
        return -errno;
    }
    if (renameat(from_fd, from, to_fd, to) != 0) {
        return errno == ENOTEMPTY ? -EEXIST : -errno;
    }
    return 0;
}

static int
fsync_dir(int fd)
{
    if (fsync(fd) != 0) {
        return -errno;
    }
    return 0;
}

/* Removes parent_fd/name and everything below, never following a
 * symlink: directories are opened O_NOFOLLOW, anything else unlinked. */
static int
tree_remove(int parent_fd, const char *name, unsigned depth, size_t *budget)
{
    if (depth > MAILDIR_FOLDERS_TRASH_DEPTH_MAX) {
        return -E2BIG;
    }
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        if (errno == ENOTDIR || errno == ELOOP) {
            /* Not a directory (a symlink, maybe to one): unlink the name. */
            if (unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
                return -errno;
            }
            return 0;
        }
        return -errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;
        (void)close(fd);
        return -err;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                rc = -errno;
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (*budget == 0) {
            rc = -E2BIG;
            break;
        }
        (*budget)--;
        bool is_dir = de->d_type == DT_DIR;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue;
                }
                rc = -errno;
                break;
            }
            is_dir = S_ISDIR(st.st_mode);
        }
        if (is_dir) {
            rc = tree_remove(fd, de->d_name, depth + 1, budget);
        } else if (unlinkat(fd, de->d_name, 0) != 0 && errno != ENOENT) {
            rc = -errno;
        }
        if (rc != 0) {
            break;
        }
    }
    (void)closedir(dir);
    if (rc == 0 && unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        rc = -errno;
    }
    return rc;
}

/* Renames entry to the trash name, removing a leftover trash first. */
static int
trash_take(int root_fd, const char *entry)
{
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = rename_noreplace(root_fd, entry, root_fd, MAILDIR_FOLDERS_TRASH_NAME);
        if (rc != -EEXIST) {
            return rc;
        }
        /* A trash from a crash, or one a concurrent delete is removing:
         * either way it is no folder any more. */
        size_t budget = MAILDIR_FOLDERS_TRASH_ENTRIES_MAX;
        rc = tree_remove(root_fd, MAILDIR_FOLDERS_TRASH_NAME, 0, &budget);
        if (rc != 0) {
            return rc;
        }
    }
    return rc;
}

static int
rename_inbox(int root_fd, const char *new_entry, size_t folders_max)
{
    int rc = create_at(root_fd, new_entry, folders_max);
    if (rc != 0) {
        return rc;
    }
    int target_fd = openat(root_fd, new_entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (target_fd < 0) {
        return -errno;
    }
    rc = copy_keywords(root_fd, target_fd);
    if (rc != 0) {
        log_warning("maildir folders: RENAME INBOX %s: dovecot-keywords not copied: %s", new_entry,
                    strerror(-rc));
        rc = 0; /* the messages keep their flags; only keyword names are lost */
    }
    size_t budget = MAILDIR_FOLDERS_INBOX_MOVE_MAX;
    rc = move_messages(root_fd, target_fd, "new", &budget);
    if (rc == 0) {
        rc = move_messages(root_fd, target_fd, "cur", &budget);
    }
    (void)close(target_fd);
    return rc;
}

/* Moves every message file of root/sub into target/sub, then fsyncs the
 * target directory before the source one (a crash in between leaves a
 * message in both or in one, never in none: rename is atomic). */
static int
move_messages(int root_fd, int target_fd, const char *sub, size_t *budget)
{
    int src_fd = openat(root_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src_fd < 0) {
        return errno == ENOENT ? 0 : -errno; /* no new/ or cur/: nothing to move */
    }
    int dst_fd = openat(target_fd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dst_fd < 0) {
        int err = errno;
        (void)close(src_fd);
        return -err;
    }
    int list_fd = openat(src_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = list_fd < 0 ? NULL : fdopendir(list_fd);
    if (dir == NULL) {
        int err = errno;
        if (list_fd >= 0) {
            (void)close(list_fd);
        }
        (void)close(dst_fd);
        (void)close(src_fd);
        return -err;
    }
    int rc = 0;
    size_t moved = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                rc = -errno;
            }
            break;
        }
        if (de->d_name[0] == '.') {
            continue; /* ".", "..", and no message name starts with '.' */
        }
        bool is_reg = de->d_type == DT_REG;
        if (de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(src_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    continue;
                }
                rc = -errno;
                break;
            }
            is_reg = S_ISREG(st.st_mode);
        }
        if (!is_reg) {
            continue;
        }
        if (*budget == 0) {
            rc = -E2BIG;
            break;
        }
        (*budget)--;
        int mrc = rename_noreplace(src_fd, de->d_name, dst_fd, de->d_name);
        if (mrc == -ENOENT) {
            continue; /* expunged or moved to cur/ meanwhile */
        }
        if (mrc != 0) {
            rc = mrc;
            break;
        }
        moved++;
    }
    (void)closedir(dir);
    if (moved > 0) {
        int frc = fsync_dir(dst_fd);
        if (frc == 0) {
            frc = fsync_dir(src_fd);
        }
        if (rc == 0) {
            rc = frc;
        }
    }
    (void)close(dst_fd);
    (void)close(src_fd);
    return rc;
}

/* Copies the root's dovecot-keywords into a new folder, through the
 * dotlock a Dovecot or a sync of the new folder would also take. */
static int
copy_keywords(int root_fd, int target_fd)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_small(root_fd, KEYWORDS_FILE_NAME, MAILDIR_KEYWORDS_FILE_BYTES_MAX, &buf, &len);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    int lock_fd;
    rc = maildir_dotlock_take(target_fd, KEYWORDS_FILE_NAME, MAILDIR_DOTLOCK_KEYWORDS_STALE_S,
                              time(NULL), &lock_fd);
    if (rc == 0) {
        rc = maildir_dotlock_replace(target_fd, KEYWORDS_FILE_NAME, lock_fd, buf, len);
    }
    free(buf);
    return rc;
}

/* Reads dir_fd/name whole into a new buffer (NUL-terminated, not counted
 * in *len_out). Larger than bytes_max: -E2BIG. */
static int
read_small(int dir_fd, const char *name, size_t bytes_max, char **buf_out, size_t *len_out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        (void)close(fd);
        return -err;
    }
    if (!S_ISREG(st.st_mode)) {
        (void)close(fd);
        return -EINVAL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > bytes_max) {
        (void)close(fd);
        return -E2BIG;
    }
    /* Read one byte past the size to see a file that grew meanwhile. */
    size_t cap = (size_t)st.st_size + 2;
    char *buf = malloc(cap);
    if (buf == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    while (len < cap - 1) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        if (r == 0) {
            break;
        }
        len += (size_t)r;
    }
    (void)close(fd);
    if (rc == 0 && len > (size_t)st.st_size) {
        rc = -EAGAIN; /* being rewritten in place: nobody does that; retry */
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    return 0;
}

/* Adds names to (is_remove: removes them from) the subscriptions file;
 * lock_fd is its dotlock, released (or consumed by the replace) in every
 * case. */
static int
subscribe_locked(int root_fd, int lock_fd, const char *const *names, size_t count,
                 bool is_remove)
{
    int rc = 0;
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    char *file = NULL;
    char *out = NULL;
    size_t file_len = 0;
    if (count == 0) {
        goto out;
    }
    rc = read_small(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME, SUBSCRIPTIONS_FILE_BYTES_MAX, &file,
                    &file_len);
    if (rc == 0) {
        rc = maildir_subscriptions_parse(&subs, file, file_len, '.', NULL);
    } else if (rc == -ENOENT) {
        rc = 0; /* no file yet: an empty list */
    }
    bool is_changed = false;
    for (size_t i = 0; i < count && rc == 0; i++) {
        int arc = is_remove
                      ? maildir_subscriptions_remove(&subs, names[i], strlen(names[i]), '.')
                      : maildir_subscriptions_add(&subs, names[i], strlen(names[i]), '.');
        if (is_remove) {
            /* 0: removed; -ENOENT: it was not there, nothing to write. */
            if (arc == 0) {
                is_changed = true;
            } else if (arc != -ENOENT) {
                rc = arc;
            }
        } else if (arc < 0) {
            rc = arc;
        } else if (arc == 1) {
            is_changed = true;
        }
    }
    if (rc == 0 && is_changed) {
        size_t bytes = maildir_subscriptions_serialized_bytes(&subs);
        size_t len = 0;
        out = malloc(bytes + 1);
        if (out == NULL) {
            rc = -ENOMEM;
        } else {
            rc = maildir_subscriptions_serialize(&subs, out, bytes + 1, &len);
        }
        if (rc == 0) {
            rc = maildir_dotlock_replace(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME, lock_fd, out,
                                         len);
            lock_fd = -1; /* closed by replace, also on failure */
        }
    }
out:
    if (lock_fd >= 0) {
        int rrc = maildir_dotlock_release(root_fd, MAILDIR_SUBSCRIPTIONS_FILE_NAME, lock_fd);
        if (rc == 0) {
            rc = rrc;
        }
    }
    free(out);
    free(file);
    maildir_subscriptions_free(&subs);
    return rc;
}

/* The user's Maildir and its parents, as delivery would make them. */
int
maildir_folders_make_root(const char *root)
{
    char path[PATH_MAX];
    size_t len = strlen(root);
    if (len + 5 >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    memcpy(path, root, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            return -errno;
        }
        path[i] = saved;
    }
    static const char *const subs[] = {"/cur", "/new", "/tmp"};
    for (size_t k = 0; k < 3; k++) {
        memcpy(path + len, subs[k], 5);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            return -errno;
        }
    }
    return 0;
}
