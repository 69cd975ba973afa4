/*
 * store/mailbox_index.c - one shared in-memory index per loaded Maildir
 * folder, and the views sessions keep of it (see mailbox_index.h).
 *
 * Owns the registry of loaded indexes (path -> index, refcounted), each
 * index's entry array, names arena, keyword table and view list. Loading
 * and refreshing run maildir_sync on a worker and then merge the result in
 * under the index mutex; STORE and EXPUNGE change entries under the mutex
 * and do their renames and unlinks after releasing it.
 *
 * Locks, in order: registry_lock, then an index's sync_lock (held across
 * disk I/O, workers only), then its lock (memory only, short). notify
 * callbacks run under lock.
 * Limits: MAILDIR_SYNC_MESSAGES_MAX entries per index.
 */
#define _GNU_SOURCE
#include "store/mailbox_index.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/hash.h"
#include "core/log.h"
#include "store/maildir_dotlock.h"
#include "store/maildir_modseq.h"
#include "store/maildir_name.h"
#include "store/maildir_sync.h"
#include "store/maildir_uidlist.h"
#include "store/maildir_watch.h"

#define REGISTRY_BUCKETS 65536u /* power of two */
#define REFRESH_CLAIM_NS UINT64_C(1000000000)

struct index_entry {
    uint32_t uid;
    uint32_t flags;
    uint32_t keywords;
    uint32_t name_off;
    uint64_t modseq;
    uint64_t expunged_modseq; /* 0: live */
    uint64_t size;
    uint64_t vsize; /* with CRLF line ends (W=); == size for our own files */
    int64_t mtime;  /* the file's mtime (INTERNALDATE) once read, else 0 */
    char *header;   /* the header block once read (header cache), or NULL */
    struct mailbox_body_text *body_text; /* one reference, or NULL */
    uint32_t header_len;
    bool is_body_text_too_large;
    uint16_t name_len;
    bool is_in_new;
    bool has_vsize; /* W= or the uidlist said so; else vsize is a guess */
    bool is_nul_free; /* read once and found without NUL bytes */
};

struct mailbox_index {
    pthread_mutex_t lock;      /* everything below except where noted */
    pthread_mutex_t sync_lock; /* one load/refresh at a time; across I/O */
    struct mailbox_index *hash_next; /* registry_lock */
    struct mailbox_index *idle_prev; /* registry_lock: on the idle list (refs 0) */
    struct mailbox_index *idle_next;
    uint32_t refs;                   /* registry_lock */
    uint32_t hash;
    bool is_loaded;       /* sync_lock */
    atomic_bool is_dirty; /* new mail delivered since the last refresh */
    atomic_uint adding;   /* APPEND/COPY linking files not yet indexed */
    /* When a view claimed the refresh (CLOCK_MONOTONIC ns, 0: none); a claim
     * older than REFRESH_CLAIM_NS lapses, in case its session went away. */
    _Atomic uint64_t refresh_claimed_ns;
    char *path;
    char *uidvalidity_root;
    uint32_t uidvalidity;
    uint32_t uidnext;
    uint64_t highest_modseq;
    uint32_t recent_claimed; /* highest UID some view has seen as \Recent */
    struct index_entry *entries;
    size_t count;
    size_t capacity;
    size_t tombstones;
    char *names;
    size_t names_len;
    size_t names_cap;
    struct maildir_keywords keywords;
    struct mailbox_view *views;
    size_t view_count;
    /* MODSEQ changes not yet appended to toaster-modseq (lock). */
    struct maildir_modseq_record *pending;
    size_t pending_count;
    size_t pending_cap;
    bool is_pending_failed; /* an allocation failed: rewrite at next load */
    struct maildir_watch_handle watch; /* inotify while loaded (sync_lock) */
    struct timespec mtime_new; /* sync_lock: directory times at the last sync */
    struct timespec mtime_cur;
    struct timespec mtime_uidlist;
};

/* An immutable body text; refs counts the index entry's and the
 * snapshots' references, and the last one frees it. */
struct mailbox_body_text {
    atomic_uint refs;
    uint32_t len;
    uint32_t body_len;
    char bytes[];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_size_t header_cache_bytes; /* over every index */
static atomic_size_t body_text_cache_bytes; /* blobs alive, over every index */
static atomic_size_t body_text_cache_bytes_max = MAILBOX_BODY_TEXT_CACHE_BYTES_MAX;
static struct mailbox_index *registry[REGISTRY_BUCKETS];
static size_t registry_count;
/* Loaded indexes nobody holds, oldest first: kept so the next SELECT,
 * STATUS or login of the same folder needs no full scan. */
static struct mailbox_index *idle_head;
static struct mailbox_index *idle_tail;
static size_t idle_count;

static struct mailbox_index *registry_find(const char *path, uint32_t hash);
static void registry_remove(struct mailbox_index *index);
static void idle_unlink(struct mailbox_index *index);
static void index_free(struct mailbox_index *index);
static void entry_header_drop(struct index_entry *e);
static void entry_body_text_drop(struct index_entry *e);
static void body_texts_of_expunged_drop(struct mailbox_index *index);
static void body_text_release(struct mailbox_body_text *text);
static int snapshot_body_text_hold(struct mailbox_snapshot *snapshot,
                                   const struct mailbox_body_text *text);
static int arena_put(char **arena, size_t *len, size_t *cap, const char *bytes, size_t n,
                     uint32_t *off_out);
static int index_sync(struct mailbox_index *index, bool is_move_new);
static int index_merge(struct mailbox_index *index, const struct maildir_sync_result *result,
                       const struct maildir_modseq *stored);
static void compact_modseq_file(struct mailbox_index *index, const struct maildir_modseq *stored);
static bool index_is_stale(struct mailbox_index *index);
static void dir_times(const char *path, struct timespec *new_out, struct timespec *cur_out,
                      struct timespec *uidlist_out);
static void notify_views(struct mailbox_index *index);
static void compact(struct mailbox_index *index);
static int names_put(char **names, size_t *len, size_t *cap, const char *name, size_t n,
                     uint32_t *off_out);
static bool view_sees(const struct mailbox_view *view, const struct index_entry *e);
static void message_from(const struct mailbox_index *index, const struct index_entry *e,
                         const struct mailbox_view *view, uint32_t seq,
                         struct mailbox_message *out);
static int snapshot_add(struct mailbox_snapshot *snapshot, const struct mailbox_message *m);
static void snapshot_finish(struct mailbox_snapshot *snapshot);
static struct index_entry *entry_by_uid(struct mailbox_index *index, uint32_t uid);
static void pending_add(struct mailbox_index *index, uint32_t uid, uint64_t modseq);
static void pending_flush(struct mailbox_index *index);
static uint32_t uid_of_base_locked(const struct mailbox_index *index, const char *base,
                                   size_t len);
static int entries_append(struct mailbox_index *index, const char *const *names, size_t count,
                          const uint32_t *uids);

/* ---- the index --------------------------------------------------------- */

int
mailbox_index_open(const char *path, const char *uidvalidity_root,
                   struct mailbox_index **index_out)
{
    ASSERT(path != NULL && index_out != NULL);
    size_t path_len = strlen(path);
    if (path_len == 0 || path_len >= PATH_MAX) {
        return -ENAMETOOLONG;
    }
    uint32_t hash = hash_fnv1a(path, path_len);
    pthread_mutex_lock(&registry_lock);
    struct mailbox_index *index = registry_find(path, hash);
    if (index != NULL) {
        if (index->refs == 0) {
            idle_unlink(index);
        }
        index->refs++;
    } else {
        index = calloc(1, sizeof(*index));
        char *path_copy = strdup(path);
        char *root_copy = uidvalidity_root != NULL ? strdup(uidvalidity_root) : NULL;
        if (index == NULL || path_copy == NULL || (uidvalidity_root != NULL && root_copy == NULL)) {
            pthread_mutex_unlock(&registry_lock);
            free(index);
            free(path_copy);
            free(root_copy);
            return -ENOMEM;
        }
        pthread_mutex_init(&index->lock, NULL);
        pthread_mutex_init(&index->sync_lock, NULL);
        index->path = path_copy;
        index->uidvalidity_root = root_copy;
        index->hash = hash;
        index->refs = 1;
        index->watch.wd_new = -1;
        index->watch.wd_cur = -1;
        maildir_keywords_init(&index->keywords);
        uint32_t bucket = hash & (REGISTRY_BUCKETS - 1);
        index->hash_next = registry[bucket];
        registry[bucket] = index;
        registry_count++;
    }
    /* Load outside the registry lock: other folders open meanwhile; other
     * openers of this one wait on sync_lock and find it loaded. */
    pthread_mutex_lock(&index->sync_lock);
    pthread_mutex_unlock(&registry_lock);
    int rc = 0;
    if (!index->is_loaded) {
        rc = index_sync(index, false);
        if (rc == 0) {
            index->is_loaded = true;
            /* Other programs' changes then reach IDLE sessions at once. */
            int watch_rc = maildir_watch_add(index->path, &index->watch);
            if (watch_rc != 0) {
                log_debug("%s: not watched: %s", index->path, strerror(-watch_rc));
            }
        }
    }
    pthread_mutex_unlock(&index->sync_lock);
    if (rc != 0) {
        mailbox_index_release(&index);
        return rc;
    }
    *index_out = index;
    return 0;
}

void
mailbox_index_release(struct mailbox_index **index_ptr)
{
    ASSERT(index_ptr != NULL);
    struct mailbox_index *index = *index_ptr;
    if (index == NULL) {
        return;
    }
    *index_ptr = NULL;
    pthread_mutex_lock(&registry_lock);
    ASSERT(index->refs > 0);
    index->refs--;
    if (index->refs > 0) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    ASSERT(index->views == NULL);
    struct mailbox_index *victim = NULL;
    if (index->is_loaded) {
        /* Kept for the next user, newest last; the oldest beyond the bound
         * goes. */
        index->idle_prev = idle_tail;
        index->idle_next = NULL;
        if (idle_tail != NULL) {
            idle_tail->idle_next = index;
        } else {
            idle_head = index;
        }
        idle_tail = index;
        idle_count++;
        if (idle_count > MAILBOX_INDEX_IDLE_MAX) {
            victim = idle_head;
            idle_unlink(victim);
            registry_remove(victim);
        }
    } else {
        victim = index; /* a load that failed */
        registry_remove(victim);
    }
    pthread_mutex_unlock(&registry_lock);
    if (victim != NULL) {
        index_free(victim);
    }
}

size_t
mailbox_index_drop_idle(void)
{
    size_t dropped = 0;
    for (;;) {
        pthread_mutex_lock(&registry_lock);
        struct mailbox_index *victim = idle_head;
        if (victim != NULL) {
            idle_unlink(victim);
            registry_remove(victim);
        }
        pthread_mutex_unlock(&registry_lock);
        if (victim == NULL) {
            return dropped;
        }
        index_free(victim);
        dropped++;
    }
}

int
mailbox_index_refresh(struct mailbox_index *index, bool is_move_new, bool is_forced)
{
    ASSERT(index != NULL);
    pthread_mutex_lock(&index->sync_lock);
    ASSERT(index->is_loaded);
    int rc = 0;
    /* Clear the marks first: a delivery during the sync marks again. */
    bool was_dirty = atomic_exchange(&index->is_dirty, false);
    atomic_store(&index->refresh_claimed_ns, 0);
    if (is_forced || is_move_new || was_dirty || index_is_stale(index)) {
        rc = index_sync(index, is_move_new);
        if (rc != 0) {
            atomic_store(&index->is_dirty, true);
        }
    }
    pthread_mutex_unlock(&index->sync_lock);
    return rc;
}

void
mailbox_index_changed_path(const char *path)
{
    ASSERT(path != NULL);
    size_t len = strlen(path);
    uint32_t hash = hash_fnv1a(path, len);
    pthread_mutex_lock(&registry_lock);
    struct mailbox_index *index = registry_find(path, hash);
    if (index != NULL) {
        atomic_store(&index->is_dirty, true);
        pthread_mutex_lock(&index->lock);
        notify_views(index);
        pthread_mutex_unlock(&index->lock);
    }
    pthread_mutex_unlock(&registry_lock);
}

bool
mailbox_index_changed_outside(const char *path)
{
    ASSERT(path != NULL);
    size_t len = strlen(path);
    uint32_t hash = hash_fnv1a(path, len);
    pthread_mutex_lock(&registry_lock);
    struct mailbox_index *index = registry_find(path, hash);
    if (index == NULL || index->refs == 0) {
        /* Not loaded, or nobody holds it: its next user's refresh compares
         * the directories' times anyway. */
        pthread_mutex_unlock(&registry_lock);
        return true;
    }
    index->refs++; /* kept alive while we look */
    pthread_mutex_unlock(&registry_lock);
    bool is_done = true;
    pthread_mutex_lock(&index->sync_lock);
    if (atomic_load(&index->adding) > 0) {
        is_done = false; /* our own files, not indexed yet */
    } else if (index->is_loaded && index_is_stale(index)) {
        atomic_store(&index->is_dirty, true);
        pthread_mutex_lock(&index->lock);
        notify_views(index);
        pthread_mutex_unlock(&index->lock);
    }
    pthread_mutex_unlock(&index->sync_lock);
    mailbox_index_release(&index);
    return is_done;
}

void
mailbox_index_adding_begin(struct mailbox_index *index)
{
    ASSERT(index != NULL);
    atomic_fetch_add(&index->adding, 1);
}

void
mailbox_index_adding_end(struct mailbox_index *index)
{
    ASSERT(index != NULL);
    unsigned before = atomic_fetch_sub(&index->adding, 1);
    ASSERT(before > 0);
}

const char *
mailbox_index_path(const struct mailbox_index *index)
{
    ASSERT(index != NULL);
    return index->path;
}

void
mailbox_index_status(struct mailbox_index *index, struct mailbox_status *out)
{
    ASSERT(index != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&index->lock);
    out->uidvalidity = index->uidvalidity;
    out->uidnext = index->uidnext;
    out->highest_modseq = index->highest_modseq;
    for (size_t i = 0; i < index->count; i++) {
        const struct index_entry *e = &index->entries[i];
        if (e->expunged_modseq != 0) {
            continue;
        }
        out->exists++;
        out->uid_max = e->uid;
        out->size += e->size;
        if (e->uid > index->recent_claimed) {
            out->recent++;
        }
        if ((e->flags & MAILDIR_FLAG_SEEN) == 0) {
            out->unseen++;
            if (out->first_unseen == 0) {
                out->first_unseen = out->exists;
            }
        }
        if (e->flags & MAILDIR_FLAG_TRASHED) {
            out->deleted++;
        }
    }
    pthread_mutex_unlock(&index->lock);
}

void
mailbox_index_keywords(struct mailbox_index *index, struct maildir_keywords *out)
{
    ASSERT(index != NULL && out != NULL);
    pthread_mutex_lock(&index->lock);
    *out = index->keywords;
    pthread_mutex_unlock(&index->lock);
}

size_t
mailbox_index_loaded_count(void)
{
    pthread_mutex_lock(&registry_lock);
    size_t n = registry_count;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

uint32_t
mailbox_index_uid_of_base(struct mailbox_index *index, const char *base, size_t len)
{
    ASSERT(index != NULL && base != NULL);
    pthread_mutex_lock(&index->lock);
    uint32_t uid = uid_of_base_locked(index, base, len);
    pthread_mutex_unlock(&index->lock);
    return uid;
}

/* The live entry whose file's base name is base[0..len), newest first (the
 * callers look for messages just added); 0 when none. Under lock. */
static uint32_t
uid_of_base_locked(const struct mailbox_index *index, const char *base, size_t len)
{
    for (size_t i = index->count; i-- > 0;) {
        const struct index_entry *e = &index->entries[i];
        const char *name = index->names + e->name_off;
        if (e->expunged_modseq == 0 && e->name_len >= len && memcmp(name, base, len) == 0 &&
            (e->name_len == len || name[len] == ':')) {
            return e->uid;
        }
    }
    return 0;
}

int
mailbox_index_keyword(struct mailbox_index *index, const char *name, size_t len)
{
    ASSERT(index != NULL && name != NULL);
    if (!maildir_keywords_is_valid(name, len)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&index->lock);
    int found = maildir_keywords_lookup(&index->keywords, name, len);
    pthread_mutex_unlock(&index->lock);
    if (found >= 0) {
        return found;
    }
    /* New: read the file fresh under its lock (another program may have
     * added keywords), add, write it back, then publish. */
    pthread_mutex_lock(&index->sync_lock);
    int dir_fd = open(index->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        int err = errno;
        pthread_mutex_unlock(&index->sync_lock);
        return -err;
    }
    int lock_fd = -1;
    int rc = maildir_dotlock_take(dir_fd, MAILDIR_KEYWORDS_FILE_NAME,
                                  MAILDIR_DOTLOCK_KEYWORDS_STALE_S, time(NULL), &lock_fd);
    struct maildir_keywords kw;
    maildir_keywords_init(&kw);
    if (rc == 0) {
        char buf[MAILDIR_KEYWORDS_FILE_BYTES_MAX + 1];
        int fd = openat(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = read(fd, buf, sizeof(buf) - 1);
            (void)close(fd);
            if (n > 0) {
                (void)maildir_keywords_parse(&kw, buf, (size_t)n, NULL);
            }
        }
        rc = maildir_keywords_add(&kw, name, len);
        if (rc >= 0) {
            int at = rc;
            size_t out_len = 0;
            rc = maildir_keywords_serialize(&kw, buf, sizeof(buf), &out_len);
            if (rc == 0) {
                rc = maildir_dotlock_replace(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, lock_fd, buf,
                                             out_len);
                lock_fd = -1;
            }
            if (rc == 0) {
                rc = at;
            }
        }
        if (lock_fd >= 0) {
            (void)maildir_dotlock_release(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, lock_fd);
        }
    }
    (void)close(dir_fd);
    if (rc >= 0) {
        pthread_mutex_lock(&index->lock);
        index->keywords = kw;
        pthread_mutex_unlock(&index->lock);
    }
    pthread_mutex_unlock(&index->sync_lock);
    return rc;
}

int
mailbox_index_add_files(struct mailbox_index *index, const char *const *names, size_t count,
                        uint32_t *uids_out)
{
    ASSERT(index != NULL && names != NULL && uids_out != NULL);
    if (count == 0) {
        return 0;
    }
    pthread_mutex_lock(&index->sync_lock);
    /* Only when nothing else happened since our last look: new/ and the
     * uidlist as recorded (cur/ just changed: that was us), no delivery
     * waiting. Otherwise a full refresh says what is there. */
    struct timespec t_new;
    struct timespec t_cur;
    struct timespec t_list;
    dir_times(index->path, &t_new, &t_cur, &t_list);
    bool is_clean = index->is_loaded && !atomic_load(&index->is_dirty) &&
                    t_new.tv_sec == index->mtime_new.tv_sec &&
                    t_new.tv_nsec == index->mtime_new.tv_nsec &&
                    t_list.tv_sec == index->mtime_uidlist.tv_sec &&
                    t_list.tv_nsec == index->mtime_uidlist.tv_nsec;
    int rc = is_clean ? maildir_sync_add(index->path, names, count, index->uidvalidity,
                                         index->uidnext, uids_out)
                      : -ESTALE;
    if (rc == 0) {
        pthread_mutex_lock(&index->lock);
        rc = entries_append(index, names, count, uids_out);
        if (rc == 0) {
            notify_views(index);
        }
        pthread_mutex_unlock(&index->lock);
    }
    if (rc == 0) {
        dir_times(index->path, &index->mtime_new, &index->mtime_cur, &index->mtime_uidlist);
    } else {
        /* The files are there either way; a full sync finds them. */
        int src = index_sync(index, false);
        for (size_t i = 0; i < count; i++) {
            uids_out[i] = 0;
        }
        if (src == 0) {
            rc = 0;
            pthread_mutex_lock(&index->lock);
            for (size_t i = 0; i < count; i++) {
                uids_out[i] = uid_of_base_locked(index, names[i], strcspn(names[i], ":"));
            }
            pthread_mutex_unlock(&index->lock);
        } else {
            rc = src;
        }
    }
    pthread_mutex_unlock(&index->sync_lock);
    pending_flush(index);
    return rc;
}

/* Entries for files just given UIDs (under lock). */
static int
entries_append(struct mailbox_index *index, const char *const *names, size_t count,
               const uint32_t *uids)
{
    if (index->count + count > index->capacity) {
        size_t cap = index->capacity * 2 + count + 16;
        struct index_entry *grown = realloc(index->entries, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        index->entries = grown;
        index->capacity = cap;
    }
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(names[i]);
        struct maildir_name parsed;
        if (maildir_name_parse(names[i], len, &parsed) != 0 ||
            (index->count > 0 && uids[i] <= index->entries[index->count - 1].uid)) {
            return -EINVAL; /* our own names: never expected */
        }
        struct index_entry *e = &index->entries[index->count];
        memset(e, 0, sizeof(*e));
        if (names_put(&index->names, &index->names_len, &index->names_cap, names[i], len,
                      &e->name_off) != 0) {
            return -ENOMEM;
        }
        e->uid = uids[i];
        e->flags = parsed.flags;
        e->keywords = parsed.keywords;
        e->size = parsed.has_size ? parsed.size : 0;
        e->vsize = parsed.has_vsize ? parsed.vsize : e->size;
        e->has_vsize = parsed.has_vsize;
        e->name_len = (uint16_t)len;
        e->modseq = ++index->highest_modseq;
        pending_add(index, e->uid, e->modseq);
        index->count++;
        index->uidnext = uids[i] + 1;
    }
    return 0;
}

void
mailbox_index_header_put(struct mailbox_index *index, uint32_t uid, const char *header,
                         size_t len)
{
    ASSERT(index != NULL && header != NULL);
    if (len == 0 || len > MAILBOX_HEADER_BYTES_MAX ||
        atomic_load(&header_cache_bytes) + len > MAILBOX_HEADER_CACHE_BYTES_MAX) {
        return;
    }
    char *copy = malloc(len);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, header, len);
    pthread_mutex_lock(&index->lock);
    struct index_entry *e = entry_by_uid(index, uid);
    if (e != NULL && e->header == NULL && e->expunged_modseq == 0) {
        e->header = copy;
        e->header_len = (uint32_t)len;
        copy = NULL;
        atomic_fetch_add(&header_cache_bytes, len);
    }
    pthread_mutex_unlock(&index->lock);
    free(copy);
}

void
mailbox_index_set_nul_free(struct mailbox_index *index, uint32_t uid)
{
    ASSERT(index != NULL);
    pthread_mutex_lock(&index->lock);
    struct index_entry *e = entry_by_uid(index, uid);
    if (e != NULL) {
        e->is_nul_free = true;
    }
    pthread_mutex_unlock(&index->lock);
}

void
mailbox_index_body_text_put(struct mailbox_index *index, uint32_t uid, const char *text,
                            size_t len, size_t body_len)
{
    ASSERT(index != NULL);
    ASSERT(text != NULL || len == 0);
    ASSERT(body_len <= len);
    if (len > MAILBOX_BODY_TEXT_BYTES_MAX) {
        mailbox_index_body_text_too_large(index, uid);
        return;
    }
    size_t bytes = sizeof(struct mailbox_body_text) + len;
    /* Reserve first, so threads putting at once cannot pass the bound. */
    if (atomic_fetch_add(&body_text_cache_bytes, bytes) + bytes >
        atomic_load(&body_text_cache_bytes_max)) {
        atomic_fetch_sub(&body_text_cache_bytes, bytes);
        return;
    }
    struct mailbox_body_text *blob = malloc(bytes);
    if (blob == NULL) {
        atomic_fetch_sub(&body_text_cache_bytes, bytes);
        return;
    }
    atomic_init(&blob->refs, 1u);
    blob->len = (uint32_t)len;
    blob->body_len = (uint32_t)body_len;
    if (len > 0) {
        memcpy(blob->bytes, text, len);
    }
    pthread_mutex_lock(&index->lock);
    struct index_entry *e = entry_by_uid(index, uid);
    if (e != NULL && e->body_text == NULL && e->expunged_modseq == 0) {
        e->body_text = blob;
        blob = NULL;
    }
    pthread_mutex_unlock(&index->lock);
    if (blob != NULL) {
        body_text_release(blob);
    }
}

void
mailbox_index_body_text_too_large(struct mailbox_index *index, uint32_t uid)
{
    ASSERT(index != NULL);
    pthread_mutex_lock(&index->lock);
    struct index_entry *e = entry_by_uid(index, uid);
    if (e != NULL) {
        e->is_body_text_too_large = true;
    }
    pthread_mutex_unlock(&index->lock);
}

const char *
mailbox_body_text_bytes(const struct mailbox_body_text *text, size_t *len_out,
                        size_t *body_len_out)
{
    ASSERT(text != NULL && len_out != NULL && body_len_out != NULL);
    ASSERT(atomic_load(&text->refs) > 0);
    *len_out = text->len;
    *body_len_out = text->body_len;
    return text->bytes;
}

size_t
mailbox_index_body_text_cache_bytes(void)
{
    return atomic_load(&body_text_cache_bytes);
}

void
mailbox_index_body_text_cache_bytes_max_set(size_t bytes_max)
{
    atomic_store(&body_text_cache_bytes_max, bytes_max < MAILBOX_BODY_TEXT_CACHE_BYTES_MAX
                                                 ? bytes_max
                                                 : MAILBOX_BODY_TEXT_CACHE_BYTES_MAX);
}

void
mailbox_index_set_mtime(struct mailbox_index *index, uint32_t uid, int64_t mtime)
{
    ASSERT(index != NULL);
    pthread_mutex_lock(&index->lock);
    struct index_entry *e = entry_by_uid(index, uid);
    if (e != NULL) {
        e->mtime = mtime;
    }
    pthread_mutex_unlock(&index->lock);
}

/* ---- views ------------------------------------------------------------- */

void
mailbox_view_attach(struct mailbox_view *view, struct mailbox_index *index, bool is_readonly,
                    void (*notify)(struct mailbox_view *view), void *owner)
{
    ASSERT(view != NULL && index != NULL && notify != NULL);
    ASSERT(view->index == NULL);
    pthread_mutex_lock(&registry_lock);
    ASSERT(index->refs > 0);
    index->refs++;
    pthread_mutex_unlock(&registry_lock);

    memset(view, 0, sizeof(*view));
    view->index = index;
    view->notify = notify;
    view->owner = owner;
    view->is_readonly = is_readonly;
    pthread_mutex_lock(&index->lock);
    view->modseq_seen = index->highest_modseq;
    view->expunge_seen = index->highest_modseq;
    uint32_t exists = 0;
    uint32_t uid_last = 0;
    for (size_t i = 0; i < index->count; i++) {
        if (index->entries[i].expunged_modseq == 0) {
            exists++;
            uid_last = index->entries[i].uid;
        }
    }
    view->exists = exists;
    view->uid_last = uid_last;
    view->recent_uid_min = index->recent_claimed + 1;
    if (uid_last > index->recent_claimed) {
        index->recent_claimed = uid_last;
    }
    view->next = index->views;
    if (index->views != NULL) {
        index->views->prev = view;
    }
    index->views = view;
    index->view_count++;
    pthread_mutex_unlock(&index->lock);
}

void
mailbox_view_detach(struct mailbox_view *view)
{
    ASSERT(view != NULL);
    struct mailbox_index *index = view->index;
    if (index == NULL) {
        return;
    }
    pthread_mutex_lock(&index->lock);
    if (view->prev != NULL) {
        view->prev->next = view->next;
    } else {
        ASSERT(index->views == view);
        index->views = view->next;
    }
    if (view->next != NULL) {
        view->next->prev = view->prev;
    }
    ASSERT(index->view_count > 0);
    index->view_count--;
    compact(index);
    pthread_mutex_unlock(&index->lock);
    memset(view, 0, sizeof(*view));
    mailbox_index_release(&index);
}

bool
mailbox_view_is_attached(const struct mailbox_view *view)
{
    ASSERT(view != NULL);
    return view->index != NULL;
}

void
mailbox_view_status(struct mailbox_view *view, struct mailbox_status *out)
{
    ASSERT(view != NULL && view->index != NULL && out != NULL);
    struct mailbox_index *index = view->index;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&index->lock);
    out->uidvalidity = index->uidvalidity;
    out->uidnext = index->uidnext;
    out->highest_modseq = index->highest_modseq;
    uint32_t seq = 0;
    for (size_t i = 0; i < index->count; i++) {
        const struct index_entry *e = &index->entries[i];
        if (!view_sees(view, e)) {
            continue;
        }
        seq++;
        out->uid_max = e->uid;
        out->size += e->size;
        if (e->uid >= view->recent_uid_min) {
            out->recent++;
        }
        if ((e->flags & MAILDIR_FLAG_SEEN) == 0) {
            out->unseen++;
            if (out->first_unseen == 0) {
                out->first_unseen = seq;
            }
        }
        if (e->flags & MAILDIR_FLAG_TRASHED) {
            out->deleted++;
        }
    }
    out->exists = seq;
    ASSERT(seq == view->exists);
    pthread_mutex_unlock(&index->lock);
}

bool
mailbox_view_has_changes(struct mailbox_view *view)
{
    ASSERT(view != NULL && view->index != NULL);
    struct mailbox_index *index = view->index;
    pthread_mutex_lock(&index->lock);
    bool changed = index->highest_modseq > view->modseq_seen ||
                   index->highest_modseq > view->expunge_seen ||
                   (index->count > 0 && index->entries[index->count - 1].uid > view->uid_last);
    pthread_mutex_unlock(&index->lock);
    return changed;
}

bool
mailbox_view_is_dirty(struct mailbox_view *view)
{
    ASSERT(view != NULL && view->index != NULL);
    return atomic_load(&view->index->is_dirty);
}

struct mailbox_index *
mailbox_view_index(const struct mailbox_view *view)
{
    ASSERT(view != NULL && view->index != NULL);
    return view->index;
}

bool
mailbox_view_claim_refresh(struct mailbox_view *view)
{
    ASSERT(view != NULL && view->index != NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t claimed = atomic_load(&view->index->refresh_claimed_ns);
    if (claimed != 0 && now - claimed < REFRESH_CLAIM_NS) {
        return false;
    }
    return atomic_compare_exchange_strong(&view->index->refresh_claimed_ns, &claimed, now);
}

void
mailbox_view_sync(struct mailbox_view *view, bool may_expunge,
                  const struct mailbox_view_changes *changes)
{
    ASSERT(view != NULL && view->index != NULL && changes != NULL);
    struct mailbox_index *index = view->index;
    pthread_mutex_lock(&index->lock);
    uint32_t seq = 0;
    uint32_t uid_limit = view->uid_last;
    bool is_grown = false;
    /* Expunges and flag changes of messages already announced, then the
     * messages added since, in one pass over the entries. */
    for (size_t i = 0; i < index->count; i++) {
        struct index_entry *e = &index->entries[i];
        if (e->uid > uid_limit) {
            /* New to this view. A message both added and expunged since the
             * view looked is never shown; while expunges may not be
             * reported, stop before one (it would look like a pending
             * expunge of a message never announced). */
            if (e->expunged_modseq != 0) {
                if (e->expunged_modseq <= view->expunge_seen || may_expunge) {
                    continue;
                }
                break;
            }
            view->uid_last = e->uid;
            view->exists++;
            seq++;
            is_grown = true;
            if (e->uid > index->recent_claimed) {
                index->recent_claimed = e->uid;
            }
            continue;
        }
        if (!view_sees(view, e)) {
            continue;
        }
        if (e->expunged_modseq != 0) {
            if (may_expunge) {
                ASSERT(view->exists > 0);
                view->exists--;
                if (changes->expunged != NULL) {
                    changes->expunged(changes->arg, seq + 1, e->uid);
                }
                continue;
            }
            seq++;
            continue;
        }
        seq++;
        if (e->modseq > view->modseq_seen &&
            (e->modseq < view->own_modseq_min || e->modseq > view->own_modseq_max) &&
            changes->flags != NULL) {
            struct mailbox_message m;
            message_from(index, e, view, seq, &m);
            changes->flags(changes->arg, &m);
        }
    }
    ASSERT(seq == view->exists);
    if (is_grown && changes->exists != NULL) {
        uint32_t recent = 0;
        for (size_t i = index->count; i-- > 0;) {
            const struct index_entry *e = &index->entries[i];
            if (e->uid < view->recent_uid_min) {
                break;
            }
            if (view_sees(view, e)) {
                recent++;
            }
        }
        changes->exists(changes->arg, view->exists, recent);
    }
    view->modseq_seen = index->highest_modseq;
    if (may_expunge) {
        view->expunge_seen = index->highest_modseq;
        if (index->tombstones > 0) {
            compact(index);
        }
    }
    pthread_mutex_unlock(&index->lock);
}

int
mailbox_view_collect(struct mailbox_view *view, bool by_uid,
                     bool (*wanted)(void *arg, uint32_t number), void *arg,
                     struct mailbox_snapshot *snapshot)
{
    ASSERT(view != NULL && view->index != NULL && wanted != NULL && snapshot != NULL);
    struct mailbox_index *index = view->index;
    int rc = 0;
    pthread_mutex_lock(&index->lock);
    uint32_t seq = 0;
    for (size_t i = 0; i < index->count && rc == 0; i++) {
        const struct index_entry *e = &index->entries[i];
        if (!view_sees(view, e)) {
            continue;
        }
        seq++;
        if (!wanted(arg, by_uid ? e->uid : seq)) {
            continue;
        }
        struct mailbox_message m;
        message_from(index, e, view, seq, &m);
        rc = snapshot_add(snapshot, &m);
    }
    pthread_mutex_unlock(&index->lock);
    snapshot_finish(snapshot);
    return rc;
}

void
mailbox_snapshot_free(struct mailbox_snapshot *snapshot)
{
    ASSERT(snapshot != NULL);
    ASSERT(snapshot->body_text_ref_count <= snapshot->body_text_ref_cap);
    for (size_t i = 0; i < snapshot->body_text_ref_count; i++) {
        body_text_release(snapshot->body_text_refs[i]);
    }
    free(snapshot->body_text_refs);
    free(snapshot->messages);
    free(snapshot->names);
    memset(snapshot, 0, sizeof(*snapshot));
}

int
mailbox_view_store(struct mailbox_view *view, struct mailbox_snapshot *snapshot,
                   enum mailbox_flags_op op, uint32_t flags, uint32_t keywords,
                   uint64_t unchangedsince)
{
    ASSERT(view != NULL && view->index != NULL && snapshot != NULL);
    ASSERT((flags & ~MAILDIR_FLAGS_ALL) == 0 && (keywords & ~MAILDIR_KEYWORDS_ALL) == 0);
    struct mailbox_index *index = view->index;
    /* Renames to do once the lock is released: old and new names. */
    struct rename_pair {
        uint32_t from_off;
        uint32_t to_off;
        bool is_in_new;
    } *renames = calloc(snapshot->count > 0 ? snapshot->count : 1, sizeof(*renames));
    char *scratch = NULL;
    size_t scratch_len = 0;
    size_t scratch_cap = 0;
    if (renames == NULL) {
        return -ENOMEM;
    }
    size_t rename_count = 0;
    int rc = 0;
    pthread_mutex_lock(&index->lock);
    uint64_t own_min = 0;
    for (size_t i = 0; i < snapshot->count && rc == 0; i++) {
        struct mailbox_message *m = &snapshot->messages[i];
        struct index_entry *e = entry_by_uid(index, m->uid);
        if (e == NULL || e->expunged_modseq != 0) {
            m->is_gone = true;
            continue;
        }
        if (unchangedsince != 0 && e->modseq > unchangedsince) {
            m->is_modified = true;
            continue;
        }
        uint32_t new_flags = e->flags;
        uint32_t new_keywords = e->keywords;
        switch (op) {
        case MAILBOX_FLAGS_ADD:
            new_flags |= flags;
            new_keywords |= keywords;
            break;
        case MAILBOX_FLAGS_REMOVE:
            new_flags &= ~flags;
            new_keywords &= ~keywords;
            break;
        case MAILBOX_FLAGS_REPLACE:
            /* Letters we do not map (P and unknown ones) stay as they are. */
            new_flags = (e->flags & ~(MAILDIR_FLAG_DRAFT | MAILDIR_FLAG_FLAGGED |
                                      MAILDIR_FLAG_REPLIED | MAILDIR_FLAG_SEEN |
                                      MAILDIR_FLAG_TRASHED)) |
                        flags;
            new_keywords = keywords;
            break;
        }
        if (new_flags == e->flags && new_keywords == e->keywords) {
            m->flags = e->flags;
            m->keywords = e->keywords;
            m->modseq = e->modseq;
            continue;
        }
        const char *old_name = index->names + e->name_off;
        struct maildir_name parsed;
        char built[MAILDIR_NAME_BYTES_MAX + 1];
        size_t built_len = 0;
        if (maildir_name_parse(old_name, e->name_len, &parsed) != 0 ||
            maildir_name_build(parsed.base, new_flags, new_keywords, built, sizeof(built),
                               &built_len) != 0) {
            /* A name we cannot rewrite keeps its flags; report it as not
             * changed rather than invent state the disk does not hold. */
            log_warning("%s: cannot set flags on %.*s", index->path, (int)e->name_len, old_name);
            continue;
        }
        uint32_t from_off;
        uint32_t to_off;
        uint32_t new_off;
        if (names_put(&scratch, &scratch_len, &scratch_cap, old_name, e->name_len, &from_off) !=
                0 ||
            names_put(&scratch, &scratch_len, &scratch_cap, built, built_len, &to_off) != 0 ||
            names_put(&index->names, &index->names_len, &index->names_cap, built, built_len,
                      &new_off) != 0) {
            rc = -ENOMEM;
            break;
        }
        renames[rename_count].from_off = from_off;
        renames[rename_count].to_off = to_off;
        renames[rename_count].is_in_new = e->is_in_new;
        rename_count++;
        e->flags = new_flags;
        e->keywords = new_keywords;
        e->modseq = ++index->highest_modseq;
        pending_add(index, e->uid, e->modseq);
        e->name_off = new_off;
        e->name_len = (uint16_t)built_len;
        /* new/ never holds flags: the renamed file moves to cur/. */
        e->is_in_new = false;
        if (own_min == 0) {
            own_min = e->modseq;
        }
        uint32_t snap_off;
        if (names_put(&snapshot->names, &snapshot->names_len, &snapshot->names_cap, built,
                      built_len, &snap_off) != 0) {
            rc = -ENOMEM;
            break;
        }
        m->name_off = snap_off;
        m->flags = new_flags;
        m->keywords = new_keywords;
        m->modseq = e->modseq;
        m->is_in_new = false;
    }
    snapshot_finish(snapshot);
    if (own_min != 0) {
        view->own_modseq_min = own_min;
        view->own_modseq_max = index->highest_modseq;
        notify_views(index);
    }
    pthread_mutex_unlock(&index->lock);

    /* Our renames change cur/'s time; when nobody else changed the folder
     * since the last sync, the new time is recorded so the next command
     * does not rescan for our own work (another program's change in the
     * same instant waits for the next one: the price of not rescanning). */
    pthread_mutex_lock(&index->sync_lock);
    bool is_clean = rename_count > 0 && !index_is_stale(index);
    for (size_t i = 0; i < rename_count; i++) {
        char from[PATH_MAX];
        char to[PATH_MAX];
        int n1 = snprintf(from, sizeof(from), "%s/%s/%s", index->path,
                          renames[i].is_in_new ? "new" : "cur", scratch + renames[i].from_off);
        int n2 = snprintf(to, sizeof(to), "%s/cur/%s", index->path, scratch + renames[i].to_off);
        if (n1 < 0 || (size_t)n1 >= sizeof(from) || n2 < 0 || (size_t)n2 >= sizeof(to)) {
            rc = -ENAMETOOLONG;
            continue;
        }
        if (rename(from, to) != 0) {
            int err = errno;
            log_warning("%s: rename %s: %s", index->path, from, strerror(err));
            rc = -err;
        }
    }
    if (rc != 0) {
        atomic_store(&index->is_dirty, true);
    } else if (is_clean) {
        dir_times(index->path, &index->mtime_new, &index->mtime_cur, &index->mtime_uidlist);
    }
    pthread_mutex_unlock(&index->sync_lock);
    pending_flush(index);
    free(renames);
    free(scratch);
    return rc;
}

long
mailbox_view_expunge(struct mailbox_view *view, const struct mailbox_snapshot *uids,
                     bool is_any_flags)
{
    ASSERT(view != NULL && view->index != NULL);
    ASSERT(!is_any_flags || uids != NULL);
    struct mailbox_index *index = view->index;
    /* Pick the files under the lock, unlink without it, then tombstone
     * what is gone. A message whose \Deleted was cleared meanwhile by
     * another session is still expunged: the client saw it deleted. */
    struct victim {
        uint32_t uid;
        uint32_t name_off;
        bool is_in_new;
    } *victims = NULL;
    size_t victim_count = 0;
    size_t victim_cap = 0;
    char *names = NULL;
    size_t names_len = 0;
    size_t names_cap = 0;
    int rc = 0;
    pthread_mutex_lock(&index->lock);
    size_t u = 0;
    for (size_t i = 0; i < index->count && rc == 0; i++) {
        const struct index_entry *e = &index->entries[i];
        if (!view_sees(view, e) || e->expunged_modseq != 0 ||
            (!is_any_flags && (e->flags & MAILDIR_FLAG_TRASHED) == 0)) {
            continue;
        }
        if (uids != NULL) {
            while (u < uids->count && uids->messages[u].uid < e->uid) {
                u++;
            }
            if (u == uids->count || uids->messages[u].uid != e->uid) {
                continue;
            }
        }
        if (victim_count == victim_cap) {
            size_t cap = victim_cap == 0 ? 64 : victim_cap * 2;
            struct victim *grown = realloc(victims, cap * sizeof(*grown));
            if (grown == NULL) {
                rc = -ENOMEM;
                break;
            }
            victims = grown;
            victim_cap = cap;
        }
        uint32_t off;
        if (names_put(&names, &names_len, &names_cap, index->names + e->name_off, e->name_len,
                      &off) != 0) {
            rc = -ENOMEM;
            break;
        }
        victims[victim_count].uid = e->uid;
        victims[victim_count].name_off = off;
        victims[victim_count].is_in_new = e->is_in_new;
        victim_count++;
    }
    pthread_mutex_unlock(&index->lock);

    pthread_mutex_lock(&index->sync_lock); /* see mailbox_view_store */
    bool is_clean = victim_count > 0 && !index_is_stale(index);
    size_t done = 0;
    for (size_t i = 0; i < victim_count; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s/%s", index->path,
                         victims[i].is_in_new ? "new" : "cur", names + victims[i].name_off);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            rc = -ENAMETOOLONG;
            victims[i].uid = 0;
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            int err = errno;
            log_warning("%s: unlink %s: %s", index->path, path, strerror(err));
            rc = -err;
            victims[i].uid = 0;
            continue;
        }
        done++;
    }
    if (is_clean && rc == 0) {
        dir_times(index->path, &index->mtime_new, &index->mtime_cur, &index->mtime_uidlist);
    }
    pthread_mutex_unlock(&index->sync_lock);

    pthread_mutex_lock(&index->lock);
    for (size_t i = 0; i < victim_count; i++) {
        struct index_entry *e = victims[i].uid != 0 ? entry_by_uid(index, victims[i].uid) : NULL;
        if (e != NULL && e->expunged_modseq == 0) {
            e->expunged_modseq = ++index->highest_modseq;
            pending_add(index, e->uid, e->expunged_modseq);
            index->tombstones++;
            entry_body_text_drop(e);
        }
    }
    if (done > 0) {
        notify_views(index);
    }
    pthread_mutex_unlock(&index->lock);
    pending_flush(index);
    free(victims);
    free(names);
    if (rc != 0) {
        atomic_store(&index->is_dirty, true);
        return rc;
    }
    return (long)done;
}

/* ---- helpers ----------------------------------------------------------- */

static struct mailbox_index *
registry_find(const char *path, uint32_t hash)
{
    for (struct mailbox_index *i = registry[hash & (REGISTRY_BUCKETS - 1)]; i != NULL;
         i = i->hash_next) {
        if (i->hash == hash && strcmp(i->path, path) == 0) {
            return i;
        }
    }
    return NULL;
}

/* Take an index out of the registry (registry_lock held). */
static void
registry_remove(struct mailbox_index *index)
{
    uint32_t bucket = index->hash & (REGISTRY_BUCKETS - 1);
    struct mailbox_index **link = &registry[bucket];
    while (*link != index) {
        ASSERT(*link != NULL);
        link = &(*link)->hash_next;
    }
    *link = index->hash_next;
    ASSERT(registry_count > 0);
    registry_count--;
}

/* Take an index off the idle list (registry_lock held). */
static void
idle_unlink(struct mailbox_index *index)
{
    ASSERT(index->refs == 0);
    if (index->idle_prev != NULL) {
        index->idle_prev->idle_next = index->idle_next;
    } else {
        ASSERT(idle_head == index);
        idle_head = index->idle_next;
    }
    if (index->idle_next != NULL) {
        index->idle_next->idle_prev = index->idle_prev;
    } else {
        ASSERT(idle_tail == index);
        idle_tail = index->idle_prev;
    }
    index->idle_prev = NULL;
    index->idle_next = NULL;
    ASSERT(idle_count > 0);
    idle_count--;
}

static void
entry_header_drop(struct index_entry *e)
{
    if (e->header != NULL) {
        atomic_fetch_sub(&header_cache_bytes, (size_t)e->header_len);
        free(e->header);
        e->header = NULL;
        e->header_len = 0;
    }
}

/* Let go of the entry's body text (under lock, or with the index no
 * longer shared); a snapshot may still hold it. */
static void
entry_body_text_drop(struct index_entry *e)
{
    if (e->body_text != NULL) {
        body_text_release(e->body_text);
        e->body_text = NULL;
    }
}

/* Expunged messages are searched no more (a search that reaches one
 * finds its file gone): their body texts go at once. Under lock. */
static void
body_texts_of_expunged_drop(struct mailbox_index *index)
{
    for (size_t i = 0; i < index->count; i++) {
        if (index->entries[i].expunged_modseq != 0) {
            entry_body_text_drop(&index->entries[i]);
        }
    }
}

static void
body_text_release(struct mailbox_body_text *text)
{
    unsigned before = atomic_fetch_sub(&text->refs, 1u);
    ASSERT(before > 0);
    if (before == 1) {
        size_t bytes = sizeof(*text) + text->len;
        size_t was = atomic_fetch_sub(&body_text_cache_bytes, bytes);
        ASSERT(was >= bytes);
        free(text);
    }
}

/* A reference for the snapshot, freed by mailbox_snapshot_free() whatever
 * the caller does to its messages. Returns 0 or -ENOMEM. */
static int
snapshot_body_text_hold(struct mailbox_snapshot *snapshot, const struct mailbox_body_text *text)
{
    if (snapshot->body_text_ref_count == snapshot->body_text_ref_cap) {
        size_t cap = snapshot->body_text_ref_cap == 0 ? 64 : snapshot->body_text_ref_cap * 2;
        struct mailbox_body_text **grown =
            realloc(snapshot->body_text_refs, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        snapshot->body_text_refs = grown;
        snapshot->body_text_ref_cap = cap;
    }
    /* The blob is immutable: only its count changes, atomically. */
    struct mailbox_body_text *held = (struct mailbox_body_text *)(uintptr_t)text;
    unsigned before = atomic_fetch_add(&held->refs, 1u);
    ASSERT(before > 0);
    snapshot->body_text_refs[snapshot->body_text_ref_count++] = held;
    return 0;
}

static void
index_free(struct mailbox_index *index)
{
    maildir_watch_remove(&index->watch);
    for (size_t i = 0; i < index->count; i++) {
        entry_header_drop(&index->entries[i]);
        entry_body_text_drop(&index->entries[i]);
    }
    pthread_mutex_destroy(&index->lock);
    pthread_mutex_destroy(&index->sync_lock);
    free(index->entries);
    free(index->names);
    free(index->pending);
    free(index->path);
    free(index->uidvalidity_root);
    free(index);
}

/* Run maildir_sync and merge the result. Caller holds sync_lock. */
static int
index_sync(struct mailbox_index *index, bool is_move_new)
{
    struct timespec t_new;
    struct timespec t_cur;
    struct timespec t_list;
    /* Times before the scan: a change during it makes the next refresh
     * look again. */
    dir_times(index->path, &t_new, &t_cur, &t_list);
    struct maildir_sync_opts opts = {
        .is_move_new = is_move_new,
        .uidvalidity_root = index->uidvalidity_root,
    };
    struct maildir_sync_result result;
    int rc = maildir_sync_run(index->path, &opts, &result);
    if (rc != 0) {
        maildir_sync_result_free(&result);
        return rc;
    }
    if (is_move_new) {
        /* Our own renames changed new/ and cur/. */
        dir_times(index->path, &t_new, &t_cur, &t_list);
    }
    struct maildir_modseq stored = {0};
    bool is_first = !index->is_loaded;
    if (is_first) {
        rc = maildir_modseq_load(index->path, result.uidvalidity, &stored);
        if (rc != 0) {
            maildir_sync_result_free(&result);
            return rc;
        }
    }
    pthread_mutex_lock(&index->lock);
    rc = index_merge(index, &result, is_first ? &stored : NULL);
    if (rc == 0) {
        notify_views(index);
    }
    pthread_mutex_unlock(&index->lock);
    if (is_first && rc == 0 && stored.count > 2 * result.entry_count + 1000) {
        compact_modseq_file(index, &stored);
    }
    maildir_sync_result_free(&result);
    maildir_modseq_free(&stored);
    if (rc == 0) {
        pending_flush(index);
    }
    if (rc == 0) {
        index->mtime_new = t_new;
        index->mtime_cur = t_cur;
        index->mtime_uidlist = t_list;
    }
    return rc;
}

/* Merge a sync result into the entries (under lock). stored != NULL:
 * first load, MODSEQs come from toaster-modseq. Later merges note every
 * MODSEQ they hand out for the file. Builds the new arrays first so a
 * failed allocation leaves the index as it was. */
static int
index_merge(struct mailbox_index *index, const struct maildir_sync_result *result,
            const struct maildir_modseq *stored)
{
    uint64_t modseq_base = stored != NULL ? stored->base : 0;
    if (index->is_loaded && result->uidvalidity != index->uidvalidity) {
        /* Someone recreated the folder's uidlist. Sessions holding the old
         * UIDs cannot go on; mark everything expunged and start over. */
        log_warning("%s: UIDVALIDITY changed from %u to %u", index->path, index->uidvalidity,
                    result->uidvalidity);
        for (size_t i = 0; i < index->count; i++) {
            if (index->entries[i].expunged_modseq == 0) {
                index->entries[i].expunged_modseq = ++index->highest_modseq;
                index->tombstones++;
            }
        }
    }
    size_t cap = index->count + result->entry_count;
    struct index_entry *entries = malloc((cap > 0 ? cap : 1) * sizeof(*entries));
    char *names = NULL;
    size_t names_len = 0;
    size_t names_cap = 0;
    if (entries == NULL) {
        return -ENOMEM;
    }
    uint64_t modseq = index->highest_modseq;
    if (stored != NULL && stored->highest > modseq) {
        modseq = stored->highest;
    }
    size_t count = 0;
    size_t tombstones = 0;
    size_t r = 0;
    int rc = 0;
    for (size_t i = 0; i <= index->count && rc == 0; i++) {
        const struct index_entry *old = i < index->count ? &index->entries[i] : NULL;
        /* Result entries before this old one are new messages. */
        while (r < result->entry_count && (old == NULL || result->entries[r].uid < old->uid)) {
            const struct maildir_sync_entry *s = &result->entries[r++];
            if (old != NULL || (count > 0 && s->uid <= entries[count - 1].uid)) {
                /* A UID below one we know: only after a UIDVALIDITY change,
                 * handled above by tombstoning every old entry. */
                if (result->uidvalidity == index->uidvalidity || !index->is_loaded) {
                    log_warning("%s: UID %u appeared out of order; ignored", index->path,
                                s->uid);
                    continue;
                }
            }
            struct index_entry *e = &entries[count];
            memset(e, 0, sizeof(*e));
            size_t name_len = strlen(s->name);
            if (names_put(&names, &names_len, &names_cap, s->name, name_len, &e->name_off) != 0) {
                rc = -ENOMEM;
                break;
            }
            e->uid = s->uid;
            e->flags = s->flags;
            e->keywords = s->keywords;
            e->size = s->size;
            e->vsize = s->has_vsize ? s->vsize : s->size;
            e->has_vsize = s->has_vsize;
            e->name_len = (uint16_t)name_len;
            e->is_in_new = s->is_in_new;
            if (stored != NULL) {
                e->modseq = maildir_modseq_of(stored, s->uid);
            } else {
                e->modseq = ++modseq;
                pending_add(index, e->uid, e->modseq);
            }
            count++;
        }
        if (old == NULL || rc != 0) {
            break;
        }
        struct index_entry *e = &entries[count];
        *e = *old;
        const char *old_name = index->names + old->name_off;
        if (old->expunged_modseq != 0) {
            tombstones++;
            if (names_put(&names, &names_len, &names_cap, old_name, old->name_len,
                          &e->name_off) != 0) {
                rc = -ENOMEM;
                break;
            }
            count++;
            continue;
        }
        if (r < result->entry_count && result->entries[r].uid == old->uid) {
            const struct maildir_sync_entry *s = &result->entries[r++];
            size_t name_len = strlen(s->name);
            if (names_put(&names, &names_len, &names_cap, s->name, name_len, &e->name_off) != 0) {
                rc = -ENOMEM;
                break;
            }
            e->name_len = (uint16_t)name_len;
            e->is_in_new = s->is_in_new;
            e->size = s->size;
            e->vsize = s->has_vsize ? s->vsize : s->size;
            e->has_vsize = s->has_vsize;
            if (s->flags != old->flags || s->keywords != old->keywords) {
                e->flags = s->flags;
                e->keywords = s->keywords;
                e->modseq = ++modseq;
                pending_add(index, e->uid, e->modseq);
            }
        } else {
            /* The file is gone: another program expunged it. */
            if (names_put(&names, &names_len, &names_cap, old_name, old->name_len,
                          &e->name_off) != 0) {
                rc = -ENOMEM;
                break;
            }
            e->expunged_modseq = ++modseq;
            pending_add(index, e->uid, e->expunged_modseq);
            tombstones++;
        }
        count++;
    }
    if (rc != 0) {
        free(entries);
        free(names);
        return rc;
    }
    ASSERT(count <= cap);
    free(index->entries);
    free(index->names);
    index->entries = entries;
    index->count = count;
    index->capacity = cap;
    index->names = names;
    index->names_len = names_len;
    index->names_cap = names_cap;
    index->tombstones = tombstones;
    index->highest_modseq = modseq;
    index->uidvalidity = result->uidvalidity;
    index->uidnext = result->next_uid;
    index->keywords = result->keywords;
    if (modseq_base != 0) {
        /* First load: files still in new/ are \Recent for the first view. */
        uint32_t claimed = index->count > 0 ? index->entries[index->count - 1].uid : 0;
        for (size_t i = 0; i < index->count; i++) {
            if (index->entries[i].is_in_new) {
                claimed = index->entries[i].uid - 1;
                break;
            }
        }
        index->recent_claimed = claimed;
    }
    body_texts_of_expunged_drop(index);
    compact(index);
    return 0;
}

/* The file grew far past the messages it describes: rewrite it with one
 * record per message that differs from the base, and the highest MODSEQ
 * reached (sync_lock held, worker). */
static void
compact_modseq_file(struct mailbox_index *index, const struct maildir_modseq *stored)
{
    pthread_mutex_lock(&index->lock);
    size_t n = 0;
    struct maildir_modseq_record *records = malloc((index->count + 1) * sizeof(*records));
    uint32_t uidvalidity = index->uidvalidity;
    if (records != NULL) {
        records[n].uid = 0;
        records[n].modseq = index->highest_modseq;
        n++;
        for (size_t i = 0; i < index->count; i++) {
            const struct index_entry *e = &index->entries[i];
            if (e->expunged_modseq == 0 && e->modseq != stored->base) {
                records[n].uid = e->uid;
                records[n].modseq = e->modseq;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&index->lock);
    if (records != NULL) {
        int rc = maildir_modseq_rewrite(index->path, uidvalidity, stored->base, records, n);
        if (rc != 0) {
            log_warning("%s: compacting %s: %s", index->path, MAILDIR_MODSEQ_FILE_NAME,
                        strerror(-rc));
        }
    }
    free(records);
}

static bool
index_is_stale(struct mailbox_index *index)
{
    struct timespec t_new;
    struct timespec t_cur;
    struct timespec t_list;
    dir_times(index->path, &t_new, &t_cur, &t_list);
    return t_new.tv_sec != index->mtime_new.tv_sec || t_new.tv_nsec != index->mtime_new.tv_nsec ||
           t_cur.tv_sec != index->mtime_cur.tv_sec || t_cur.tv_nsec != index->mtime_cur.tv_nsec ||
           t_list.tv_sec != index->mtime_uidlist.tv_sec ||
           t_list.tv_nsec != index->mtime_uidlist.tv_nsec;
}

/* Modification times of new/, cur/ and dovecot-uidlist; zero for what is
 * missing (a missing directory makes the sync fail with a clear error). */
static void
dir_times(const char *path, struct timespec *new_out, struct timespec *cur_out,
          struct timespec *uidlist_out)
{
    static const char *const names[3] = {"new", "cur", MAILDIR_UIDLIST_NAME};
    struct timespec *outs[3] = {new_out, cur_out, uidlist_out};
    for (int i = 0; i < 3; i++) {
        char p[PATH_MAX];
        struct stat st;
        memset(outs[i], 0, sizeof(*outs[i]));
        int n = snprintf(p, sizeof(p), "%s/%s", path, names[i]);
        if (n > 0 && (size_t)n < sizeof(p) && stat(p, &st) == 0) {
            *outs[i] = st.st_mtim;
        }
    }
}

static void
notify_views(struct mailbox_index *index)
{
    size_t n = 0;
    for (struct mailbox_view *v = index->views; v != NULL; v = v->next) {
        ASSERT(n++ < index->view_count);
        v->notify(v);
    }
}

/* Drop tombstones every view has reported or never showed. Under lock. */
static void
compact(struct mailbox_index *index)
{
    if (index->tombstones == 0) {
        return;
    }
    size_t out = 0;
    size_t kept = 0;
    for (size_t i = 0; i < index->count; i++) {
        struct index_entry *e = &index->entries[i];
        bool keep = false;
        if (e->expunged_modseq != 0) {
            for (const struct mailbox_view *v = index->views; v != NULL && !keep; v = v->next) {
                keep = e->uid <= v->uid_last && e->expunged_modseq > v->expunge_seen;
            }
            if (!keep) {
                entry_header_drop(e);
                entry_body_text_drop(e);
                continue;
            }
            kept++;
        }
        index->entries[out++] = *e;
    }
    index->count = out;
    index->tombstones = kept;
}

static int
names_put(char **names, size_t *len, size_t *cap, const char *name, size_t n, uint32_t *off_out)
{
    ASSERT(n <= MAILDIR_NAME_BYTES_MAX);
    return arena_put(names, len, cap, name, n, off_out);
}

/* Append n bytes and a NUL to a growing arena; the offset goes out. */
static int
arena_put(char **names, size_t *len, size_t *cap, const char *name, size_t n, uint32_t *off_out)
{
    if (*len + n + 1 > *cap) {
        size_t want = *cap == 0 ? 4096 : *cap * 2;
        while (want < *len + n + 1) {
            want *= 2;
        }
        if (want > UINT32_MAX) {
            return -ENOMEM;
        }
        char *grown = realloc(*names, want);
        if (grown == NULL) {
            return -ENOMEM;
        }
        *names = grown;
        *cap = want;
    }
    memcpy(*names + *len, name, n);
    (*names)[*len + n] = '\0';
    *off_out = (uint32_t)*len;
    *len += n + 1;
    return 0;
}

/* Is the entry in the view's message sequence? */
static bool
view_sees(const struct mailbox_view *view, const struct index_entry *e)
{
    return e->uid <= view->uid_last &&
           (e->expunged_modseq == 0 || e->expunged_modseq > view->expunge_seen);
}

static void
message_from(const struct mailbox_index *index, const struct index_entry *e,
             const struct mailbox_view *view, uint32_t seq, struct mailbox_message *out)
{
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->uid = e->uid;
    out->flags = e->flags;
    out->keywords = e->keywords;
    out->modseq = e->expunged_modseq != 0 ? e->expunged_modseq : e->modseq;
    out->size = e->size;
    out->vsize = e->vsize;
    out->mtime = e->mtime;
    out->has_vsize = e->has_vsize;
    out->is_nul_free = e->is_nul_free;
    out->is_recent = view != NULL && e->uid >= view->recent_uid_min;
    out->is_in_new = e->is_in_new;
    out->is_gone = e->expunged_modseq != 0;
    out->name = index->names + e->name_off;
    out->header = e->header;
    out->header_len = e->header_len;
    out->body_text = e->body_text; /* borrowed: a snapshot takes a reference */
    out->is_body_text_too_large = e->is_body_text_too_large;
}

/* Append m, copying its name into the snapshot's own arena. The arena may
 * move while it grows, so names are kept as offsets (name_off) and turned
 * into pointers by snapshot_finish(). */
static int
snapshot_add(struct mailbox_snapshot *snapshot, const struct mailbox_message *m)
{
    if (snapshot->count == snapshot->capacity) {
        size_t cap = snapshot->capacity == 0 ? 64 : snapshot->capacity * 2;
        struct mailbox_message *grown = realloc(snapshot->messages, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        snapshot->messages = grown;
        snapshot->capacity = cap;
    }
    uint32_t off;
    if (names_put(&snapshot->names, &snapshot->names_len, &snapshot->names_cap, m->name,
                  strlen(m->name), &off) != 0) {
        return -ENOMEM;
    }
    uint32_t header_off = 0;
    bool has_header = snapshot->is_with_headers && m->header != NULL;
    if (has_header && arena_put(&snapshot->names, &snapshot->names_len, &snapshot->names_cap,
                                m->header, m->header_len, &header_off) != 0) {
        return -ENOMEM;
    }
    bool has_body_text = snapshot->is_with_body_text && m->body_text != NULL;
    if (has_body_text && snapshot_body_text_hold(snapshot, m->body_text) != 0) {
        return -ENOMEM;
    }
    struct mailbox_message *slot = &snapshot->messages[snapshot->count++];
    *slot = *m;
    if (!has_body_text) {
        slot->body_text = NULL;
    }
    slot->name = NULL;
    slot->name_off = off;
    slot->header = NULL;
    slot->header_len = has_header ? m->header_len : 0;
    slot->header_off = header_off;
    return 0;
}

static void
snapshot_finish(struct mailbox_snapshot *snapshot)
{
    for (size_t i = 0; i < snapshot->count; i++) {
        struct mailbox_message *m = &snapshot->messages[i];
        m->name = snapshot->names + m->name_off;
        m->header = m->header_len > 0 ? snapshot->names + m->header_off : NULL;
    }
}

/* Binary search: entries are sorted by UID. */
static struct index_entry *
entry_by_uid(struct mailbox_index *index, uint32_t uid)
{
    size_t lo = 0;
    size_t hi = index->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (index->entries[mid].uid < uid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < index->count && index->entries[lo].uid == uid ? &index->entries[lo] : NULL;
}

/* Note a MODSEQ change for toaster-modseq (under lock). */
static void
pending_add(struct mailbox_index *index, uint32_t uid, uint64_t modseq)
{
    if (index->pending_count == index->pending_cap) {
        size_t cap = index->pending_cap == 0 ? 64 : index->pending_cap * 2;
        struct maildir_modseq_record *grown = realloc(index->pending, cap * sizeof(*grown));
        if (grown == NULL) {
            index->is_pending_failed = true;
            return;
        }
        index->pending = grown;
        index->pending_cap = cap;
    }
    index->pending[index->pending_count].uid = uid;
    index->pending[index->pending_count].modseq = modseq;
    index->pending_count++;
}

/* Append the noted changes (worker, without the lock held). */
static void
pending_flush(struct mailbox_index *index)
{
    pthread_mutex_lock(&index->lock);
    struct maildir_modseq_record *records = index->pending;
    size_t count = index->pending_count;
    index->pending = NULL;
    index->pending_count = 0;
    index->pending_cap = 0;
    pthread_mutex_unlock(&index->lock);
    maildir_modseq_append(index->path, records, count);
    free(records);
}
