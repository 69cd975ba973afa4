/*
 * store/maildir_watch.c - inotify on loaded Maildir folders; see
 * maildir_watch.h.
 *
 * The table maps watch descriptors to folder paths, sorted by descriptor
 * (the kernel hands them out in increasing order, so adding appends).
 * The thread copies the paths of a batch's folders out under the lock and
 * calls back without it, so the callback may take any lock.
 */
#define _GNU_SOURCE
#include "store/maildir_watch.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"

#define WATCH_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR)
#define WATCH_READ_BYTES (64u * 1024)
/* Folders waiting to be reported; beyond, a folder is reported at once. */
#define WATCH_BATCH_FOLDERS 64u
/* Events settle this long before a folder is reported: our own APPEND
 * links a file and indexes it a moment later. */
#define WATCH_SETTLE_MS 50u

struct watch_entry {
    int wd;
    char *path; /* the folder, shared by its new/ and cur/ entries */
};

static struct {
    pthread_mutex_t lock;
    int inotify_fd;
    int stop_fd;
    pthread_t thread;
    bool is_running;
    bool is_full_logged;
    bool (*changed)(const char *folder_path);
    struct watch_entry *entries; /* sorted by wd */
    size_t count;
    size_t cap;
} watch = {.lock = PTHREAD_MUTEX_INITIALIZER, .inotify_fd = -1, .stop_fd = -1};

static void *watch_main(void *arg);

/* Index of wd in the table, or of where it would go. Caller holds lock. */
static size_t
entry_find(int wd, bool *is_found)
{
    size_t lo = 0;
    size_t hi = watch.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (watch.entries[mid].wd < wd) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *is_found = lo < watch.count && watch.entries[lo].wd == wd;
    return lo;
}

/* Caller holds lock. Returns 0 or -ENOMEM. */
static int
entry_put(int wd, const char *path)
{
    bool is_found;
    size_t at = entry_find(wd, &is_found);
    if (is_found) {
        /* The kernel gave an existing descriptor back: the same directory. */
        char *copy = strdup(path);
        if (copy == NULL) {
            return -ENOMEM;
        }
        free(watch.entries[at].path);
        watch.entries[at].path = copy;
        return 0;
    }
    if (watch.count == watch.cap) {
        size_t cap = watch.cap == 0 ? 64 : watch.cap * 2;
        struct watch_entry *grown = realloc(watch.entries, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        watch.entries = grown;
        watch.cap = cap;
    }
    char *copy = strdup(path);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memmove(&watch.entries[at + 1], &watch.entries[at],
            (watch.count - at) * sizeof(watch.entries[0]));
    watch.entries[at] = (struct watch_entry){.wd = wd, .path = copy};
    watch.count++;
    return 0;
}

/* Caller holds lock. */
static void
entry_drop(int wd)
{
    bool is_found;
    size_t at = entry_find(wd, &is_found);
    if (!is_found) {
        return;
    }
    free(watch.entries[at].path);
    memmove(&watch.entries[at], &watch.entries[at + 1],
            (watch.count - at - 1) * sizeof(watch.entries[0]));
    watch.count--;
}

int
maildir_watch_start(bool (*changed)(const char *folder_path))
{
    ASSERT(changed != NULL);
    pthread_mutex_lock(&watch.lock);
    ASSERT(!watch.is_running);
    int rc = 0;
    watch.inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    watch.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (watch.inotify_fd < 0 || watch.stop_fd < 0) {
        rc = -errno;
    } else {
        watch.changed = changed;
        int err = pthread_create(&watch.thread, NULL, watch_main, NULL);
        rc = -err;
    }
    if (rc != 0) {
        if (watch.inotify_fd >= 0) {
            (void)close(watch.inotify_fd);
        }
        if (watch.stop_fd >= 0) {
            (void)close(watch.stop_fd);
        }
        watch.inotify_fd = -1;
        watch.stop_fd = -1;
    } else {
        watch.is_running = true;
    }
    pthread_mutex_unlock(&watch.lock);
    return rc;
}

void
maildir_watch_stop(void)
{
    pthread_mutex_lock(&watch.lock);
    if (!watch.is_running) {
        pthread_mutex_unlock(&watch.lock);
        return;
    }
    watch.is_running = false;
    uint64_t one = 1;
    ssize_t n = write(watch.stop_fd, &one, sizeof(one));
    ASSERT(n == (ssize_t)sizeof(one));
    pthread_mutex_unlock(&watch.lock);
    (void)pthread_join(watch.thread, NULL);
    pthread_mutex_lock(&watch.lock);
    (void)close(watch.inotify_fd); /* drops every watch */
    (void)close(watch.stop_fd);
    watch.inotify_fd = -1;
    watch.stop_fd = -1;
    for (size_t i = 0; i < watch.count; i++) {
        free(watch.entries[i].path);
    }
    free(watch.entries);
    watch.entries = NULL;
    watch.count = 0;
    watch.cap = 0;
    pthread_mutex_unlock(&watch.lock);
}

/* Caller holds lock. Returns the descriptor or -errno. */
static int
watch_dir(const char *folder_path, const char *sub)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s/%s", folder_path, sub);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    int wd = inotify_add_watch(watch.inotify_fd, dir, WATCH_EVENTS);
    if (wd < 0) {
        return -errno;
    }
    int rc = entry_put(wd, folder_path);
    if (rc != 0) {
        (void)inotify_rm_watch(watch.inotify_fd, wd);
        return rc;
    }
    return wd;
}

int
maildir_watch_add(const char *folder_path, struct maildir_watch_handle *handle)
{
    ASSERT(folder_path != NULL && handle != NULL);
    handle->wd_new = -1;
    handle->wd_cur = -1;
    pthread_mutex_lock(&watch.lock);
    if (!watch.is_running) {
        pthread_mutex_unlock(&watch.lock);
        return 0;
    }
    int wd_new = watch_dir(folder_path, "new");
    int wd_cur = wd_new >= 0 ? watch_dir(folder_path, "cur") : wd_new;
    int rc = 0;
    if (wd_new < 0 || wd_cur < 0) {
        rc = wd_new < 0 ? wd_new : wd_cur;
        if (wd_new >= 0) {
            (void)inotify_rm_watch(watch.inotify_fd, wd_new);
            entry_drop(wd_new);
        }
        if (rc == -ENOSPC && !watch.is_full_logged) {
            watch.is_full_logged = true;
            log_warning("maildir watch: fs.inotify.max_user_watches reached; changes other "
                        "programs make are seen at the next command");
        }
    } else {
        handle->wd_new = wd_new;
        handle->wd_cur = wd_cur;
    }
    pthread_mutex_unlock(&watch.lock);
    return rc == -ENOSPC ? 0 : rc;
}

void
maildir_watch_remove(struct maildir_watch_handle *handle)
{
    ASSERT(handle != NULL);
    pthread_mutex_lock(&watch.lock);
    int wds[2] = {handle->wd_new, handle->wd_cur};
    for (size_t i = 0; i < 2; i++) {
        if (wds[i] >= 0 && watch.is_running) {
            /* EINVAL when the directory went away: the kernel dropped it. */
            (void)inotify_rm_watch(watch.inotify_fd, wds[i]);
            entry_drop(wds[i]);
        }
    }
    handle->wd_new = -1;
    handle->wd_cur = -1;
    pthread_mutex_unlock(&watch.lock);
}

/* Folders with news waiting for their settle time: a change is reported
 * WATCH_SETTLE_MS after its first event (later events of the same folder
 * ride along), and again later while the callback says the folder is busy
 * with a change of our own. */
struct pending {
    char path[PATH_MAX];
    uint64_t due_ms;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Queue path unless it waits already. Returns false when the list is full
 * (the caller reports it at once instead). */
static bool
pending_add(struct pending *list, size_t *count, const char *path, uint64_t due_ms)
{
    for (size_t i = 0; i < *count; i++) {
        if (strcmp(list[i].path, path) == 0) {
            return true;
        }
    }
    if (*count == WATCH_BATCH_FOLDERS || strlen(path) >= PATH_MAX) {
        return false;
    }
    strcpy(list[*count].path, path);
    list[*count].due_ms = due_ms;
    (*count)++;
    return true;
}

/* Read what the kernel has and queue the folders it names. Caller holds
 * nothing; takes the lock. */
static void
events_read(char *buf, struct pending *list, size_t *count)
{
    ssize_t len = read(watch.inotify_fd, buf, WATCH_READ_BYTES);
    if (len <= 0) {
        return; /* EAGAIN: another wake-up raced this one */
    }
    uint64_t due = now_ms() + WATCH_SETTLE_MS;
    char overflow[WATCH_BATCH_FOLDERS][PATH_MAX];
    size_t overflow_count = 0;
    pthread_mutex_lock(&watch.lock);
    bool is_lost = false;
    /* Each event is a header plus its name; the kernel writes whole
     * events, so this walk ends at len. */
    for (size_t pos = 0; pos + sizeof(struct inotify_event) <= (size_t)len;) {
        const struct inotify_event *ev = (const struct inotify_event *)(buf + pos);
        pos += sizeof(*ev) + ev->len;
        if (ev->mask & IN_Q_OVERFLOW) {
            is_lost = true;
            continue;
        }
        bool is_found;
        size_t at = entry_find(ev->wd, &is_found);
        if (!is_found) {
            continue; /* removed meanwhile */
        }
        if (!pending_add(list, count, watch.entries[at].path, due) &&
            overflow_count < WATCH_BATCH_FOLDERS) {
            strcpy(overflow[overflow_count++], watch.entries[at].path);
        }
        if (ev->mask & IN_IGNORED) {
            entry_drop(ev->wd); /* the directory is gone */
        }
    }
    /* Events were lost: every watched folder may have changed. */
    for (size_t i = 0; is_lost && i < watch.count; i++) {
        if (!pending_add(list, count, watch.entries[i].path, due) &&
            overflow_count < WATCH_BATCH_FOLDERS) {
            strcpy(overflow[overflow_count++], watch.entries[i].path);
        }
    }
    pthread_mutex_unlock(&watch.lock);
    for (size_t i = 0; i < overflow_count; i++) {
        (void)watch.changed(overflow[i]);
    }
}

static void *
watch_main(void *arg)
{
    (void)arg;
    log_buffer_begin();
    char *buf = malloc(WATCH_READ_BYTES);
    struct pending *list = malloc(WATCH_BATCH_FOLDERS * sizeof(*list));
    if (buf == NULL || list == NULL) {
        log_error("maildir watch: out of memory; changes are seen at the next command");
        free(buf);
        free(list);
        log_flush();
        return NULL;
    }
    size_t count = 0;
    for (;;) {
        int timeout = -1;
        uint64_t now = now_ms();
        for (size_t i = 0; i < count; i++) {
            int wait = list[i].due_ms > now ? (int)(list[i].due_ms - now) : 0;
            if (timeout < 0 || wait < timeout) {
                timeout = wait;
            }
        }
        struct pollfd fds[2] = {
            {.fd = watch.inotify_fd, .events = POLLIN},
            {.fd = watch.stop_fd, .events = POLLIN},
        };
        int n = poll(fds, 2, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("maildir watch: poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && (fds[1].revents & POLLIN) != 0) {
            break;
        }
        if (n > 0 && (fds[0].revents & POLLIN) != 0) {
            events_read(buf, list, &count);
        }
        now = now_ms();
        for (size_t i = 0; i < count;) {
            if (list[i].due_ms > now) {
                i++;
                continue;
            }
            if (!watch.changed(list[i].path)) {
                list[i].due_ms = now + WATCH_SETTLE_MS; /* busy: ask again */
                i++;
                continue;
            }
            list[i] = list[--count];
        }
        log_flush();
    }
    free(buf);
    free(list);
    log_flush();
    return NULL;
}
