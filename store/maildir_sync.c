/*
 * store/maildir_sync.c - one Maildir folder's dovecot-uidlist brought up to
 * date with the files in new/ and cur/ (see maildir_sync.h).
 *
 * Owns nothing between calls: every sync reads the uidlist and scans the
 * directories again, under the uidlist dotlock, so toasterd and Dovecot
 * can share the folder. Does not parse messages or touch dovecot.index*.
 * Runs on worker threads: blocking readdir/stat/rename and malloc.
 * Limits: MAILDIR_SYNC_MESSAGES_MAX files, SYNC_UIDLIST_BYTES_MAX,
 * SYNC_KEYWORDS_BYTES_MAX.
 */
#define _GNU_SOURCE
#include "store/maildir_sync.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"
#include "store/maildir_dotlock.h"
#include "store/maildir_name.h"
#include "store/maildir_uidlist.h"

/* A uidlist line is at most MAILDIR_UIDLIST_LINE_BYTES_MAX; real ones are
 * ~60 bytes. 512 bytes a message on average is far beyond what Dovecot
 * writes and still a bound. */
#define SYNC_UIDLIST_BYTES_MAX ((size_t)MAILDIR_SYNC_MESSAGES_MAX * 512)
/* A damaged dovecot-keywords longer than this is read only this far: the
 * mailbox must still open (Dovecot skips bad lines too). */
#define SYNC_KEYWORDS_BYTES_MAX (64 * 1024)
#define SYNC_UIDVALIDITY_NAME "dovecot-uidvalidity"
#define SYNC_ATTEMPTS_MAX 2

static_assert(MAILDIR_SYNC_MESSAGES_MAX <= MAILDIR_UIDLIST_RECORDS_MAX,
              "a full folder must fit in the uidlist");
static_assert(MAILDIR_NAME_BYTES_MAX < UINT16_MAX, "names fit in uint16_t lengths");

struct scan_ent {
    uint32_t name_off; /* into scan.pool */
    uint16_t name_len;
    uint16_t base_len;
    uint32_t uid;      /* 0: not in the uidlist */
    uint32_t flags;
    uint32_t keywords;
    uint64_t size;
    uint64_t vsize;
    bool     has_size;
    bool     has_vsize;
    bool     has_info; /* name has ':' */
    bool     is_new;   /* found in new/ */
    bool     is_in_new; /* still in new/ after the optional move */
    bool     is_dropped; /* duplicate base name: ignored */
};

struct scan {
    struct scan_ent *ents;
    size_t count;
    size_t capacity;
    size_t count_max;
    char  *pool;
    size_t pool_len;
    size_t pool_capacity;
};

static int read_small_file(int dir_fd, const char *name, size_t bytes_max, bool is_truncate_ok,
                           char **buf_out, size_t *len_out);
static int uidvalidity_pick(const char *root, time_t now, uint32_t *uidvalidity_out);
static int load_uidlist(int dir_fd, const char *path, time_t now,
                        const struct maildir_sync_opts *opts, struct maildir_uidlist *list,
                        bool *is_new_out);
static void load_keywords(int dir_fd, const char *path, struct maildir_keywords *kw);
static int scan_dir(int dir_fd, const char *sub, bool is_new, struct scan *scan);
static int scan_all(int dir_fd, struct scan *scan);
static void scan_reset(struct scan *scan);
static int scan_resolve(int dir_fd, const char *path, const struct maildir_uidlist *list,
                        struct scan *scan, bool is_last, bool *is_race_out);
static int scan_move_new(int dir_fd, struct scan *scan, bool *is_race_out);
static int dovecot_name_cmp(const char *a, const char *b);
static int cmp_u32(const void *a, const void *b);
static int result_build(const struct scan *scan, struct maildir_sync_result *result);
static int cmp_fresh(const void *a, const void *b);

/* qsort has no context argument: the scan being sorted, per thread. */
static _Thread_local const struct scan *tls_scan;

static const char *
ent_name(const struct scan *scan, const struct scan_ent *ent)
{
    return scan->pool + ent->name_off;
}

/* ---- public ---- */

int
maildir_sync_run(const char *path, const struct maildir_sync_opts *opts,
                 struct maildir_sync_result *result_out)
{
    ASSERT(path != NULL);
    ASSERT(opts != NULL);
    ASSERT(result_out != NULL);
    memset(result_out, 0, sizeof(*result_out));
    maildir_keywords_init(&result_out->keywords);
    time_t now = opts->now != 0 ? opts->now : time(NULL);

    int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        int rc = -errno;
        log_error("maildir sync %s: cannot open: %s", path, strerror(errno));
        return rc;
    }
    int lock_fd = -1;
    int rc = maildir_uidlist_lock(dir_fd, now, &lock_fd);
    if (rc != 0) {
        if (rc != -EAGAIN) {
            log_error("maildir sync %s: cannot lock " MAILDIR_UIDLIST_NAME ": %s", path,
                      strerror(-rc));
        }
        (void)close(dir_fd); /* read-only fd: nothing to lose */
        return rc;
    }

    struct maildir_uidlist list;
    memset(&list, 0, sizeof(list));
    struct scan scan;
    memset(&scan, 0, sizeof(scan));
    scan.count_max = opts->messages_max != 0 && opts->messages_max < MAILDIR_SYNC_MESSAGES_MAX
                         ? opts->messages_max
                         : MAILDIR_SYNC_MESSAGES_MAX;
    char *out = NULL;
    bool is_new_list = false;

    rc = load_uidlist(dir_fd, path, now, opts, &list, &is_new_list);
    if (rc != 0) {
        goto unlock;
    }
    load_keywords(dir_fd, path, &result_out->keywords);

    bool is_race = true;
    for (int attempt = 0; attempt < SYNC_ATTEMPTS_MAX && is_race; attempt++) {
        scan_reset(&scan);
        rc = scan_all(dir_fd, &scan);
        if (rc != 0) {
            log_error("maildir sync %s: cannot scan: %s", path, strerror(-rc));
            goto unlock;
        }
        rc = scan_resolve(dir_fd, path, &list, &scan, attempt + 1 == SYNC_ATTEMPTS_MAX, &is_race);
        if (rc != 0) {
            log_error("maildir sync %s: cannot stat a message: %s", path, strerror(-rc));
            goto unlock;
        }
        if (is_race) {
            continue;
        }
        /* A record whose file was not seen may just have been renamed
         * (flag change) while we read cur/: look once more before
         * expunging, as Dovecot does. */
        size_t found_count = 0;
        for (size_t i = 0; i < scan.count; i++) {
            found_count += !scan.ents[i].is_dropped && scan.ents[i].uid != 0;
        }
        /* found_count can exceed live_count only if the list holds one base
         * twice, which parse refuses; not asserted: the file is not ours. */
        if (found_count < list.live_count && attempt + 1 < SYNC_ATTEMPTS_MAX) {
            is_race = true;
            continue;
        }
        if (opts->is_move_new) {
            rc = scan_move_new(dir_fd, &scan, &is_race);
            if (rc != 0) {
                log_error("maildir sync %s: cannot move new/ to cur/: %s", path, strerror(-rc));
                goto unlock;
            }
        }
    }
    if (is_race) {
        log_warning("maildir sync %s: files keep moving under the scan; retry later", path);
        rc = -EAGAIN;
        goto unlock;
    }

    /* Expunge: live records no entry refers to. Mark by UID through a
     * sorted walk: records and found UIDs both increase. */
    {
        uint32_t *found = NULL;
        size_t found_count = 0;
        if (scan.count > 0) {
            found = malloc(scan.count * sizeof(*found));
            if (found == NULL) {
                rc = -ENOMEM;
                goto unlock;
            }
        }
        for (size_t i = 0; i < scan.count; i++) {
            if (!scan.ents[i].is_dropped && scan.ents[i].uid != 0) {
                found[found_count++] = scan.ents[i].uid;
            }
        }
        /* Entries are sorted by name, not UID: sort the UIDs. */
        if (found_count > 1) {
            qsort(found, found_count, sizeof(*found), cmp_u32);
        }
        size_t k = 0;
        size_t rec_count = list.rec_count;
        for (size_t r = 0; r < rec_count; r++) {
            const struct maildir_uidlist_rec *rec = &list.recs[r];
            if (rec->is_removed) {
                continue;
            }
            while (k < found_count && found[k] < rec->uid) {
                k++;
            }
            if (k < found_count && found[k] == rec->uid) {
                continue;
            }
            int rm = maildir_uidlist_remove(&list, rec->uid);
            ASSERT(rm == 0);
            result_out->expunged_count++;
        }
        free(found);
    }

    /* New files get UIDs in Dovecot's order (maildir_filename_sort_cmp). */
    {
        size_t fresh_count = 0;
        for (size_t i = 0; i < scan.count; i++) {
            fresh_count += !scan.ents[i].is_dropped && scan.ents[i].uid == 0;
        }
        struct scan_ent **fresh = NULL;
        if (fresh_count > 0) {
            fresh = malloc(fresh_count * sizeof(*fresh));
            if (fresh == NULL) {
                rc = -ENOMEM;
                goto unlock;
            }
        }
        size_t n = 0;
        for (size_t i = 0; i < scan.count; i++) {
            if (!scan.ents[i].is_dropped && scan.ents[i].uid == 0) {
                fresh[n++] = &scan.ents[i];
            }
        }
        ASSERT(n == fresh_count);
        tls_scan = &scan;
        if (n > 1) {
            qsort(fresh, n, sizeof(*fresh), cmp_fresh);
        }
        tls_scan = NULL;
        for (size_t i = 0; i < n; i++) {
            struct scan_ent *e = fresh[i];
            uint32_t uid = 0;
            rc = maildir_uidlist_append(&list, ent_name(&scan, e), e->base_len, "", &uid);
            if (rc != 0) {
                log_error("maildir sync %s: cannot give %s a UID: %s", path,
                          ent_name(&scan, e), strerror(-rc));
                free(fresh);
                goto unlock;
            }
            ASSERT(uid != 0);
            e->uid = uid;
            result_out->added_count++;
        }
        free(fresh);
    }

    result_out->uidvalidity = list.uidvalidity;
    result_out->next_uid = list.next_uid;
    rc = result_build(&scan, result_out);
    if (rc != 0) {
        goto unlock;
    }

    if (list.is_changed || is_new_list) {
        /* serialize() wants one byte more than it writes (snprintf's NUL). */
        size_t bytes = maildir_uidlist_serialized_bytes(&list) + 1;
        out = malloc(bytes);
        if (out == NULL) {
            rc = -ENOMEM;
            goto unlock;
        }
        size_t len = 0;
        rc = maildir_uidlist_serialize(&list, out, bytes, &len);
        ASSERT(rc == 0); /* sized by serialized_bytes */
        rc = maildir_uidlist_commit(dir_fd, lock_fd, out, len);
        lock_fd = -1; /* commit releases the lock in every case */
        if (rc != 0) {
            log_error("maildir sync %s: cannot write " MAILDIR_UIDLIST_NAME ": %s", path,
                      strerror(-rc));
            goto unlock;
        }
        result_out->is_uidlist_written = true;
    }

unlock:
    if (lock_fd >= 0) {
        int urc = maildir_uidlist_unlock(dir_fd, lock_fd);
        if (urc != 0) {
            /* The lock file stays and goes stale in 120 s: log, keep the
             * sync's own result. */
            log_error("maildir sync %s: cannot remove " MAILDIR_UIDLIST_LOCK_NAME ": %s", path,
                      strerror(-urc));
        }
    }
    (void)close(dir_fd); /* read-only directory fd */
    free(out);
    free(scan.ents);
    free(scan.pool);
    maildir_uidlist_free(&list);
    if (rc != 0) {
        maildir_sync_result_free(result_out);
    }
    return rc;
}

int
maildir_sync_add(const char *path, const char *const *names, size_t count, uint32_t uidvalidity,
                 uint32_t next_uid, uint32_t *uids_out)
{
    ASSERT(path != NULL && names != NULL && uids_out != NULL);
    time_t now = time(NULL);
    int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return -errno;
    }
    int lock_fd = -1;
    int rc = maildir_uidlist_lock(dir_fd, now, &lock_fd);
    if (rc != 0) {
        (void)close(dir_fd);
        return rc;
    }
    struct maildir_uidlist list;
    memset(&list, 0, sizeof(list));
    char *buf = NULL;
    size_t len = 0;
    rc = read_small_file(dir_fd, MAILDIR_UIDLIST_NAME, SYNC_UIDLIST_BYTES_MAX, false, &buf, &len);
    if (rc == 0) {
        rc = maildir_uidlist_parse(&list, buf, len, NULL);
        free(buf);
        buf = NULL;
    }
    if (rc == 0 && (list.uidvalidity != uidvalidity || list.next_uid != next_uid)) {
        rc = -ESTALE; /* someone else changed the list: the caller rescans */
    }
    /* In the caller's order, which is the order the names were made in:
     * increasing time part, as a full sync would give them. */
    for (size_t i = 0; i < count && rc == 0; i++) {
        size_t base_len = strcspn(names[i], ":");
        rc = maildir_uidlist_append(&list, names[i], base_len, "", &uids_out[i]);
    }
    if (rc == 0) {
        size_t bytes = maildir_uidlist_serialized_bytes(&list) + 1;
        buf = malloc(bytes);
        if (buf == NULL) {
            rc = -ENOMEM;
        } else {
            rc = maildir_uidlist_serialize(&list, buf, bytes, &len);
            ASSERT(rc == 0); /* sized by serialized_bytes */
            rc = maildir_uidlist_commit(dir_fd, lock_fd, buf, len);
            lock_fd = -1; /* released by commit in every case */
        }
    }
    if (lock_fd >= 0) {
        (void)maildir_uidlist_unlock(dir_fd, lock_fd);
    }
    free(buf);
    maildir_uidlist_free(&list);
    (void)close(dir_fd);
    return rc;
}

void
maildir_sync_result_free(struct maildir_sync_result *result)
{
    ASSERT(result != NULL);
    free(result->entries);
    free(result->names);
    result->entries = NULL;
    result->names = NULL;
    result->entry_count = 0;
}

/* ---- helpers ---- */

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a;
    uint32_t y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int
cmp_entry_uid(const void *a, const void *b)
{
    const struct maildir_sync_entry *x = a;
    const struct maildir_sync_entry *y = b;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

/* Reads dir_fd/name whole. -ENOENT if missing; -E2BIG if larger than
 * bytes_max unless is_truncate_ok (then the first bytes_max bytes). The
 * buffer is NUL-terminated and the caller's to free. */
static int
read_small_file(int dir_fd, const char *name, size_t bytes_max, bool is_truncate_ok,
                char **buf_out, size_t *len_out)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        (void)close(fd); /* read-only */
        return rc;
    }
    size_t want = st.st_size > 0 ? (size_t)st.st_size : 0;
    if (want > bytes_max) {
        if (!is_truncate_ok) {
            (void)close(fd); /* read-only */
            return -E2BIG;
        }
        want = bytes_max;
    }
    char *buf = malloc(want + 1);
    if (buf == NULL) {
        (void)close(fd); /* read-only */
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int rc = -errno;
            free(buf);
            (void)close(fd); /* read-only */
            return rc;
        }
        if (n == 0) {
            break; /* shrank under us (a rename replaced it): use what we have */
        }
        got += (size_t)n;
    }
    (void)close(fd); /* read-only */
    buf[got] = '\0';
    *buf_out = buf;
    *len_out = got;
    return 0;
}

/* A new mailbox's UIDVALIDITY as Dovecot's mailbox_uidvalidity_next():
 * one more than the last in <root>/dovecot-uidvalidity, or the time if
 * larger; the file is rewritten and the empty marker
 * dovecot-uidvalidity.<hex> moved along. */
static int
uidvalidity_pick(const char *root, time_t now, uint32_t *uidvalidity_out)
{
    if (root == NULL) {
        *uidvalidity_out = maildir_uidlist_uidvalidity_next(0, now);
        return 0;
    }
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        return -errno;
    }
    int lock_fd = -1;
    int rc = maildir_dotlock_take(root_fd, SYNC_UIDVALIDITY_NAME, MAILDIR_DOTLOCK_UIDLIST_STALE_S,
                                  now, &lock_fd);
    if (rc != 0) {
        (void)close(root_fd); /* read-only */
        return rc;
    }
    uint32_t last = 0;
    char *buf = NULL;
    size_t len = 0;
    rc = read_small_file(root_fd, SYNC_UIDVALIDITY_NAME, 64, false, &buf, &len);
    if (rc == 0) {
        if (maildir_uidlist_uidvalidity_file_parse(buf, len, &last) != 0) {
            log_warning("%s/" SYNC_UIDVALIDITY_NAME ": not 8 hex digits; starting over", root);
            last = 0;
        }
        free(buf);
    } else if (rc != -ENOENT && rc != -E2BIG) {
        (void)maildir_dotlock_release(root_fd, SYNC_UIDVALIDITY_NAME, lock_fd); /* already failing */
        (void)close(root_fd); /* read-only */
        return rc;
    }
    uint32_t next = maildir_uidlist_uidvalidity_next(last, now);
    char hex[9];
    int n = maildir_uidlist_uidvalidity_file_format(next, hex, sizeof(hex));
    ASSERT(n == 8);
    rc = maildir_dotlock_replace(root_fd, SYNC_UIDVALIDITY_NAME, lock_fd, hex, 8);
    if (rc == 0) {
        char marker[sizeof(SYNC_UIDVALIDITY_NAME) + 9];
        (void)snprintf(marker, sizeof(marker), SYNC_UIDVALIDITY_NAME ".%s", hex);
        int mfd = openat(root_fd, marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (mfd >= 0) {
            (void)close(mfd); /* empty file, nothing written */
        }
        if (last != 0 && last != next) {
            char old[sizeof(marker)];
            char old_hex[9];
            (void)maildir_uidlist_uidvalidity_file_format(last, old_hex, sizeof(old_hex));
            (void)snprintf(old, sizeof(old), SYNC_UIDVALIDITY_NAME ".%s", old_hex);
            /* The marker is a hint for Dovecot only; a stale one is harmless. */
            (void)unlinkat(root_fd, old, 0);
        }
    }
    (void)close(root_fd); /* read-only */
    if (rc != 0) {
        return rc;
    }
    *uidvalidity_out = next;
    return 0;
}

static int
load_uidlist(int dir_fd, const char *path, time_t now, const struct maildir_sync_opts *opts,
             struct maildir_uidlist *list, bool *is_new_out)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_small_file(dir_fd, MAILDIR_UIDLIST_NAME, SYNC_UIDLIST_BYTES_MAX, false, &buf,
                             &len);
    if (rc == -ENOENT) {
        uint32_t uidvalidity = 0;
        rc = uidvalidity_pick(opts->uidvalidity_root, now, &uidvalidity);
        if (rc != 0) {
            log_error("maildir sync %s: cannot pick a UIDVALIDITY in %s: %s", path,
                      opts->uidvalidity_root, strerror(-rc));
            return rc;
        }
        *is_new_out = true;
        rc = maildir_uidlist_init_new(list, uidvalidity, NULL);
        if (rc != 0) {
            log_error("maildir sync %s: cannot start a uidlist: %s", path, strerror(-rc));
        }
        return rc;
    }
    if (rc != 0) {
        log_error("maildir sync %s: cannot read " MAILDIR_UIDLIST_NAME ": %s", path,
                  strerror(-rc));
        return rc;
    }
    size_t line = 0;
    rc = maildir_uidlist_parse(list, buf, len, &line);
    free(buf);
    if (rc != 0) {
        log_error("maildir sync %s: " MAILDIR_UIDLIST_NAME " line %zu: %s", path, line,
                  strerror(-rc));
    }
    return rc;
}

static void
load_keywords(int dir_fd, const char *path, struct maildir_keywords *kw)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = read_small_file(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, SYNC_KEYWORDS_BYTES_MAX, true, &buf, &len);
    if (rc != 0) {
        if (rc != -ENOENT) {
            /* Keywords are names for letters: the letters still sync. */
            log_warning("maildir sync %s: cannot read dovecot-keywords: %s", path, strerror(-rc));
        }
        return;
    }
    size_t skipped = 0;
    (void)maildir_keywords_parse(kw, buf, len, &skipped); /* always 0 */
    if (skipped > 0) {
        log_warning("maildir sync %s: dovecot-keywords: %zu lines skipped", path, skipped);
    }
    free(buf);
}

static void
scan_reset(struct scan *scan)
{
    scan->count = 0;
    scan->pool_len = 0;
}

static int
scan_push(struct scan *scan, const char *name, size_t len, const struct maildir_name *mn,
          bool is_new)
{
    ASSERT(scan->count_max <= MAILDIR_SYNC_MESSAGES_MAX);
    if (scan->count >= scan->count_max) {
        return -E2BIG;
    }
    if (scan->count == scan->capacity) {
        size_t cap = scan->capacity == 0 ? 64 : scan->capacity * 2;
        struct scan_ent *e = realloc(scan->ents, cap * sizeof(*e));
        if (e == NULL) {
            return -ENOMEM;
        }
        scan->ents = e;
        scan->capacity = cap;
    }
    if (scan->pool_capacity - scan->pool_len < len + 1) {
        size_t cap = scan->pool_capacity == 0 ? 4096 : scan->pool_capacity;
        while (cap - scan->pool_len < len + 1) {
            cap *= 2;
        }
        char *p = realloc(scan->pool, cap);
        if (p == NULL) {
            return -ENOMEM;
        }
        scan->pool = p;
        scan->pool_capacity = cap;
    }
    /* Bounded by MAILDIR_SYNC_MESSAGES_MAX * (NAME_MAX + 1) < 2^32. */
    ASSERT(scan->pool_len + len + 1 <= UINT32_MAX);
    struct scan_ent *e = &scan->ents[scan->count++];
    memset(e, 0, sizeof(*e));
    e->name_off = (uint32_t)scan->pool_len;
    e->name_len = (uint16_t)len;
    e->base_len = (uint16_t)mn->base.len;
    e->flags = mn->has_flags ? mn->flags : 0;
    e->keywords = mn->has_flags ? mn->keywords : 0;
    e->size = mn->size;
    e->has_size = mn->has_size;
    e->vsize = mn->vsize;
    e->has_vsize = mn->has_vsize;
    e->has_info = mn->base.len < len;
    e->is_new = is_new;
    e->is_in_new = is_new;
    memcpy(scan->pool + scan->pool_len, name, len);
    scan->pool[scan->pool_len + len] = '\0';
    scan->pool_len += len + 1;
    return 0;
}

static int
scan_dir(int dir_fd, const char *sub, bool is_new, struct scan *scan)
{
    int fd = openat(dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int rc = -errno;
        (void)close(fd); /* read-only */
        return rc;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            rc = errno != 0 ? -errno : 0;
            break;
        }
        if (de->d_type == DT_DIR) {
            continue;
        }
        size_t len = strnlen(de->d_name, sizeof(de->d_name));
        struct maildir_name mn;
        if (maildir_name_parse(de->d_name, len, &mn) != 0) {
            continue; /* dot files and junk: not messages, as for Dovecot */
        }
        rc = scan_push(scan, de->d_name, len, &mn, is_new);
        if (rc != 0) {
            break;
        }
    }
    (void)closedir(dir); /* read-only; closes fd */
    return rc;
}

/* new/ first: a file moved new/ -> cur/ while we read is seen in cur/. */
static int
scan_all(int dir_fd, struct scan *scan)
{
    int rc = scan_dir(dir_fd, "new", true, scan);
    if (rc == 0) {
        rc = scan_dir(dir_fd, "cur", false, scan);
    }
    return rc;
}

static int
cmp_ent_base(const void *a, const void *b)
{
    const struct scan_ent *x = a;
    const struct scan_ent *y = b;
    size_t n = x->base_len < y->base_len ? x->base_len : y->base_len;
    int c = memcmp(tls_scan->pool + x->name_off, tls_scan->pool + y->name_off, n);
    if (c != 0) {
        return c;
    }
    if (x->base_len != y->base_len) {
        return x->base_len < y->base_len ? -1 : 1;
    }
    /* Same base: cur/ before new/, then by full name for a stable pick. */
    if (x->is_new != y->is_new) {
        return x->is_new ? 1 : -1;
    }
    return strcmp(tls_scan->pool + x->name_off, tls_scan->pool + y->name_off);
}

/* Drops duplicate base names (keeping cur/ over new/), looks each file up
 * in the uidlist, fills in sizes. Sets *is_race_out when a file vanished
 * between readdir and stat, or (unless is_last) one base name shows up
 * twice in one directory (a rename seen half-way). Seen again on the last
 * attempt, such a pair is real (a crash, a copy by hand): the first name
 * in byte order is used and the other ignored, so the folder still syncs. */
static int
scan_resolve(int dir_fd, const char *path, const struct maildir_uidlist *list, struct scan *scan,
             bool is_last, bool *is_race_out)
{
    *is_race_out = false;
    tls_scan = scan;
    if (scan->count > 1) {
        qsort(scan->ents, scan->count, sizeof(*scan->ents), cmp_ent_base);
    }
    tls_scan = NULL;
    for (size_t i = 1; i < scan->count; i++) {
        struct scan_ent *prev = &scan->ents[i - 1];
        struct scan_ent *e = &scan->ents[i];
        if (prev->base_len == e->base_len &&
            memcmp(ent_name(scan, prev), ent_name(scan, e), e->base_len) == 0) {
            if (prev->is_new == e->is_new) {
                if (!is_last) {
                    *is_race_out = true;
                } else {
                    log_warning("maildir sync %s: %s/%s: base name used twice; ignored", path,
                                e->is_new ? "new" : "cur", ent_name(scan, e));
                }
            }
            e->is_dropped = true; /* the first of a run of equal bases stays */
        }
    }
    for (size_t i = 0; i < scan->count; i++) {
        struct scan_ent *e = &scan->ents[i];
        if (e->is_dropped) {
            continue;
        }
        const struct maildir_uidlist_rec *rec =
            maildir_uidlist_lookup(list, ent_name(scan, e), e->base_len);
        struct span v;
        if (rec != NULL) {
            e->uid = rec->uid;
            if (!e->has_vsize && maildir_uidlist_rec_ext(rec, 'W', &v) && v.len > 0 &&
                v.len < 20) {
                char num[21];
                memcpy(num, v.ptr, v.len);
                num[v.len] = '\0';
                char *end = NULL;
                errno = 0;
                unsigned long long w = strtoull(num, &end, 10);
                if (errno == 0 && end == num + v.len && num[0] >= '0' && num[0] <= '9') {
                    e->vsize = w;
                    e->has_vsize = true;
                }
            }
            if (!e->has_size && maildir_uidlist_rec_ext(rec, 'S', &v) && v.len > 0 &&
                v.len < 20) {
                char num[21];
                memcpy(num, v.ptr, v.len);
                num[v.len] = '\0';
                char *end = NULL;
                errno = 0;
                unsigned long long s = strtoull(num, &end, 10);
                if (errno == 0 && end == num + v.len && num[0] >= '0' && num[0] <= '9') {
                    e->size = s;
                    e->has_size = true;
                }
            }
        }
        if (!e->has_size) {
            char rel[4 + MAILDIR_NAME_BYTES_MAX + 1];
            int n = snprintf(rel, sizeof(rel), "%s/%s", e->is_new ? "new" : "cur",
                             ent_name(scan, e));
            ASSERT(n > 0 && (size_t)n < sizeof(rel));
            struct stat st;
            if (fstatat(dir_fd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0) {
                if (errno == ENOENT) {
                    *is_race_out = true;
                    continue;
                }
                return -errno;
            }
            e->size = st.st_size > 0 ? (uint64_t)st.st_size : 0;
            e->has_size = true;
        }
    }
    return 0;
}

/* new/<name> -> cur/<name>:2, (or cur/<name> if it has an info part). */
static int
scan_move_new(int dir_fd, struct scan *scan, bool *is_race_out)
{
    for (size_t i = 0; i < scan->count; i++) {
        struct scan_ent *e = &scan->ents[i];
        if (e->is_dropped || !e->is_in_new) {
            continue;
        }
        const char *name = ent_name(scan, e);
        char from[4 + MAILDIR_NAME_BYTES_MAX + 1];
        char to[4 + MAILDIR_NAME_BYTES_MAX + 3 + 1];
        int n = snprintf(from, sizeof(from), "new/%s", name);
        ASSERT(n > 0 && (size_t)n < sizeof(from));
        n = snprintf(to, sizeof(to), "cur/%s%s", name, e->has_info ? "" : ":2,");
        ASSERT(n > 0 && (size_t)n < sizeof(to));
        if (n - 4 > MAILDIR_NAME_BYTES_MAX) {
            continue; /* no room for ":2,": leave it in new/, still listed */
        }
        if (renameat2(dir_fd, from, dir_fd, to, RENAME_NOREPLACE) != 0) {
            if (errno == EINVAL) {
                /* File system without RENAME_NOREPLACE: plain rename, as
                 * Dovecot does. */
                if (renameat(dir_fd, from, dir_fd, to) == 0) {
                    goto moved;
                }
            }
            if (errno == ENOENT || errno == EEXIST) {
                *is_race_out = true; /* someone else moved it: scan again */
                continue;
            }
            return -errno;
        }
moved:
        e->is_in_new = false;
        if (!e->has_info) {
            /* The pool has no room to grow this name in place: append it. */
            size_t len = (size_t)n - 4;
            if (scan->pool_capacity - scan->pool_len < len + 1) {
                size_t cap = scan->pool_capacity * 2;
                while (cap - scan->pool_len < len + 1) {
                    cap *= 2;
                }
                char *p = realloc(scan->pool, cap);
                if (p == NULL) {
                    return -ENOMEM; /* the file moved; the next sync lists it */
                }
                scan->pool = p;
                scan->pool_capacity = cap;
            }
            memcpy(scan->pool + scan->pool_len, to + 4, len + 1);
            e->name_off = (uint32_t)scan->pool_len;
            e->name_len = (uint16_t)len;
            e->has_info = true;
            scan->pool_len += len + 1;
        }
    }
    return 0;
}

static bool
parse_ulong_prefix(const char *s, unsigned long long *v_out, const char **end_out)
{
    if (*s < '0' || *s > '9') {
        return false;
    }
    unsigned long long v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 19; i++) {
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    *v_out = v;
    *end_out = s + i;
    return true;
}

/* Dovecot's maildir_filename_sort_cmp(): seconds, then ".M<usecs>"
 * numerically when both have them, then the bytes. */
static int
dovecot_name_cmp(const char *a, const char *b)
{
    unsigned long long sa = 0;
    unsigned long long sb = 0;
    const char *ea = NULL;
    const char *eb = NULL;
    if (parse_ulong_prefix(a, &sa, &ea) && parse_ulong_prefix(b, &sb, &eb)) {
        if (sa != sb) {
            return sa < sb ? -1 : 1;
        }
        if (ea[0] == '.' && ea[1] == 'M' && eb[0] == '.' && eb[1] == 'M') {
            unsigned long long ua = 0;
            unsigned long long ub = 0;
            const char *xa = NULL;
            const char *xb = NULL;
            if (parse_ulong_prefix(ea + 2, &ua, &xa) && parse_ulong_prefix(eb + 2, &ub, &xb) &&
                ua != ub) {
                return ua < ub ? -1 : 1;
            }
        }
    }
    return strcmp(a, b);
}

static int
cmp_fresh(const void *a, const void *b)
{
    const struct scan_ent *x = *(const struct scan_ent *const *)a;
    const struct scan_ent *y = *(const struct scan_ent *const *)b;
    return dovecot_name_cmp(ent_name(tls_scan, x), ent_name(tls_scan, y));
}

static int
result_build(const struct scan *scan, struct maildir_sync_result *result)
{
    size_t count = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < scan->count; i++) {
        const struct scan_ent *e = &scan->ents[i];
        if (!e->is_dropped && e->uid != 0) {
            count++;
            bytes += (size_t)e->name_len + 1;
        }
    }
    if (count == 0) {
        return 0;
    }
    struct maildir_sync_entry *entries = calloc(count, sizeof(*entries));
    char *names = malloc(bytes);
    if (entries == NULL || names == NULL) {
        free(entries);
        free(names);
        return -ENOMEM;
    }
    size_t k = 0;
    size_t off = 0;
    for (size_t i = 0; i < scan->count; i++) {
        const struct scan_ent *e = &scan->ents[i];
        if (e->is_dropped || e->uid == 0) {
            continue;
        }
        struct maildir_sync_entry *o = &entries[k++];
        o->uid = e->uid;
        o->flags = e->flags;
        o->keywords = e->keywords;
        o->is_recent = e->is_new;
        o->is_in_new = e->is_in_new;
        o->has_vsize = e->has_vsize;
        o->size = e->size;
        o->vsize = e->vsize;
        memcpy(names + off, ent_name(scan, e), (size_t)e->name_len + 1);
        o->name = names + off;
        off += (size_t)e->name_len + 1;
    }
    ASSERT(k == count);
    ASSERT(off == bytes);
    qsort(entries, count, sizeof(*entries), cmp_entry_uid);
    for (size_t i = 1; i < count; i++) {
        ASSERT(entries[i - 1].uid < entries[i].uid);
    }
    result->entries = entries;
    result->names = names;
    result->entry_count = count;
    return 0;
}
