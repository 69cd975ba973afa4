/*
 * store/users_edit.c - edit users_file safely (see users_edit.h).
 *
 * Owns one in-memory copy of the file (the bytes as read, edited by
 * splicing), the lock file descriptor and the identity (device, inode,
 * size, mtime) of the file as read, which users_edit_commit() compares
 * before it renames, so an edit made meanwhile by hand is not silently
 * lost. Does not talk to the daemon: toasterctl asks it to reload.
 * Blocking I/O and crypt(3), for toasterctl only.
 * Limits: USERS_EDIT_FILE_BYTES_MAX, USERS_EDIT_NAME_BYTES_MAX,
 * USERS_EDIT_HASH_BYTES_MAX, USERS_EDIT_LOCK_WAIT_MS (users_edit.h).
 */
#define _GNU_SOURCE
#include "store/users_edit.h"

#include <assert.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/utf8.h"
#include "store/password.h"

/* bcrypt's libxcrypt default cost is 5 (32 rounds): too cheap today.
 * 12 is what current guidance (OWASP) names, about 0.2 s per check. */
#define USERS_EDIT_BCRYPT_COST 12
#define USERS_EDIT_LOCK_POLL_MS 50

static_assert(USERS_EDIT_NAME_BYTES_MAX <=
                  USERS_EDIT_LOCAL_BYTES_MAX + 1 + USERS_EDIT_DOMAIN_BYTES_MAX,
              "a name is a local part, '@' and a domain");
static_assert(USERS_EDIT_PASSWORD_BYTES_MAX == CRYPT_MAX_PASSPHRASE_SIZE - 1,
              "the longest passphrase libxcrypt takes");
static_assert(USERS_EDIT_PASSWORD_BYTES_MAX <= PASSWORD_BYTES_MAX, "the daemon checks it");
static_assert(USERS_EDIT_FILE_BYTES_MAX < SIZE_MAX / 2, "room to splice an edit");

struct users_edit {
    char *path; /* the file edited: users_file with symlinks resolved */
    int lock_fd;
    char *bytes; /* the file as it will be written */
    size_t len;
    size_t capacity;
    bool is_existing; /* users_file was there when read */
    dev_t dev;        /* its identity as read, checked before rename */
    ino_t ino;
    off_t size;
    struct timespec mtime;
    mode_t mode;
    uid_t uid;
    gid_t gid;
};

/* One line of the file: [start, end) without its '\n'; content is the part
 * store/recipients.c reads (no CR, no blanks around), empty for blank and
 * comment lines; name is the part before the first ':'. */
struct users_line {
    size_t start;
    size_t end;
    size_t next; /* start of the following line */
    size_t content_start;
    size_t content_end;
    size_t name_end;
    bool is_entry;
    bool has_colon;
};

static void err_set(char *err, size_t err_bytes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool line_next(const struct users_edit *edit, size_t pos, struct users_line *line);
static bool line_is_user(const struct users_edit *edit, const struct users_line *line,
                         const char *name);
static int hash_check(const char *hash);
static int bytes_splice(struct users_edit *edit, size_t at, size_t remove_len, const char *insert,
                        size_t insert_len);
static int64_t now_ms(void);

/* ---- public ------------------------------------------------------------------ */

int
users_edit_name_check(const char *name, char *canonical_out, char *err, size_t err_bytes)
{
    size_t len = strnlen(name, USERS_EDIT_NAME_BYTES_MAX + 1);
    canonical_out[0] = '\0';
    if (len > USERS_EDIT_NAME_BYTES_MAX) {
        err_set(err, err_bytes, "longer than %d bytes", USERS_EDIT_NAME_BYTES_MAX);
        return -EINVAL;
    }
    const char *at = memchr(name, '@', len);
    if (at == NULL || memchr(at + 1, '@', len - (size_t)(at - name) - 1) != NULL) {
        err_set(err, err_bytes, "not local@domain (exactly one '@')");
        return -EINVAL;
    }
    size_t local_len = (size_t)(at - name);
    const char *domain = at + 1;
    size_t domain_len = len - local_len - 1;
    if (local_len == 0 || local_len > USERS_EDIT_LOCAL_BYTES_MAX) {
        err_set(err, err_bytes, "the local part must have 1 to %d bytes",
                USERS_EDIT_LOCAL_BYTES_MAX);
        return -EINVAL;
    }
    /* '#' first would make the line a comment; '.' first or ".." would
     * walk out of the Maildir tree, as would '/'. */
    if (name[0] == '.' || name[0] == '#') {
        err_set(err, err_bytes, "the local part must not start with '%c'", name[0]);
        return -EINVAL;
    }
    for (size_t i = 0; i < local_len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == 0x7f || c == ':' || c == '"' || c == '/') {
            err_set(err, err_bytes,
                    "the local part must not contain blanks, control bytes, "
                    "':', '\"' or '/'");
            return -EINVAL;
        }
        if (c == '.' && name[i + 1] == '.') {
            err_set(err, err_bytes, "the local part must not contain \"..\"");
            return -EINVAL;
        }
    }
    if (local_len > 0 && name[local_len - 1] == '.') {
        err_set(err, err_bytes, "the local part must not end with '.'");
        return -EINVAL;
    }
    if (domain_len == 0 || domain_len > USERS_EDIT_DOMAIN_BYTES_MAX) {
        err_set(err, err_bytes, "the domain must have 1 to %d bytes", USERS_EDIT_DOMAIN_BYTES_MAX);
        return -EINVAL;
    }
    if (domain[0] == '.' || domain[domain_len - 1] == '.') {
        err_set(err, err_bytes, "the domain must not start or end with '.'");
        return -EINVAL;
    }
    for (size_t i = 0; i < domain_len; i++) {
        unsigned char c = (unsigned char)domain[i];
        bool is_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c >= 0x80 || (c == '.' && domain[i - 1] != '.');
        if (!is_ok) {
            err_set(err, err_bytes,
                    "the domain may hold letters, digits, '-', '_' and single "
                    "dots only");
            return -EINVAL;
        }
    }
    if (!utf8_is_valid(name, len)) {
        err_set(err, err_bytes, "not well-formed UTF-8");
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        canonical_out[i] = (char)ascii_lower((unsigned char)name[i]);
    }
    canonical_out[len] = '\0';
    return 0;
}

int
users_edit_scheme_parse(const char *text, enum users_edit_scheme *scheme_out)
{
    if (strcasecmp(text, "YESCRYPT") == 0) {
        *scheme_out = USERS_EDIT_YESCRYPT;
    } else if (strcasecmp(text, "SHA512-CRYPT") == 0) {
        *scheme_out = USERS_EDIT_SHA512_CRYPT;
    } else if (strcasecmp(text, "BLF-CRYPT") == 0) {
        *scheme_out = USERS_EDIT_BLF_CRYPT;
    } else {
        return -EINVAL;
    }
    return 0;
}

int
users_edit_hash(enum users_edit_scheme scheme, const char *password, char *hash_out,
                size_t hash_bytes)
{
    ASSERT(hash_bytes > 0);
    hash_out[0] = '\0';
    size_t password_len = strnlen(password, USERS_EDIT_PASSWORD_BYTES_MAX + 1);
    if (password_len == 0 || password_len > USERS_EDIT_PASSWORD_BYTES_MAX ||
        strpbrk(password, "\r\n") != NULL) {
        return -EINVAL;
    }
    /* Dovecot reads yescrypt under CRYPT (the system's crypt(3), which is
     * libxcrypt on current distributions); {YESCRYPT} only in newer ones. */
    const char *label;
    const char *prefix;
    unsigned long count;
    switch (scheme) {
    case USERS_EDIT_YESCRYPT:
        label = "{CRYPT}";
        prefix = "$y$";
        count = 0; /* libxcrypt's default cost, as passwd(1) uses */
        break;
    case USERS_EDIT_SHA512_CRYPT:
        label = "{SHA512-CRYPT}";
        prefix = "$6$";
        count = 0; /* 5000 rounds: what Dovecot itself makes */
        break;
    case USERS_EDIT_BLF_CRYPT:
        label = "{BLF-CRYPT}";
        prefix = "$2y$"; /* $2y$ rather than $2b$: older Dovecot reads only $2a$/$2y$ */
        count = USERS_EDIT_BCRYPT_COST;
        break;
    default:
        ASSERT(false);
        return -EINVAL;
    }
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    /* NULL random bytes: libxcrypt takes them from getrandom(2). */
    errno = 0;
    if (crypt_gensalt_rn(prefix, count, NULL, 0, salt, (int)sizeof(salt)) == NULL) {
        return errno > 0 ? -errno : -EIO;
    }
    struct crypt_data *data = calloc(1, sizeof(*data));
    if (data == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    errno = 0;
    const char *out = crypt_rn(password, salt, data, (int)sizeof(*data));
    if (out == NULL || out[0] == '*') {
        rc = errno > 0 ? -errno : -EIO;
    } else {
        int n = snprintf(hash_out, hash_bytes, "%s%s", label, out);
        if (n < 0 || (size_t)n >= hash_bytes) {
            rc = -ENOSPC;
        }
    }
    explicit_bzero(data, sizeof(*data));
    free(data);
    /* What we store must pass the daemon's own check; a libcrypt without
     * the scheme would otherwise lock the user out silently. */
    if (rc == 0 && password_verify(hash_out, password) != 0) {
        rc = -ENOTSUP;
    }
    if (rc != 0) {
        explicit_bzero(hash_out, hash_bytes);
        hash_out[0] = '\0';
    }
    return rc;
}

int
users_edit_open(const char *users_path, struct users_edit **edit_out, char *err, size_t err_bytes)
{
    *edit_out = NULL;
    if (users_path[0] == '\0') {
        err_set(err, err_bytes, "users_file is empty in the configuration");
        return -EINVAL;
    }
    struct users_edit *edit = calloc(1, sizeof(*edit));
    if (edit == NULL) {
        return -ENOMEM;
    }
    edit->lock_fd = -1;
    int rc = 0;
    /* The lock is on a side file that stays in place: a lock on users_file
     * itself would be lost with the inode that the rename replaces. */
    char lock_path[PATH_MAX];
    int n = snprintf(lock_path, sizeof(lock_path), "%s.lock", users_path);
    if (n < 0 || (size_t)n >= sizeof(lock_path)) {
        err_set(err, err_bytes, "%s: path too long", users_path);
        rc = -ENAMETOOLONG;
        goto fail;
    }
    edit->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (edit->lock_fd < 0) {
        rc = -errno;
        err_set(err, err_bytes, "%s: %s", lock_path, strerror(-rc));
        goto fail;
    }
    int64_t deadline_ms = now_ms() + USERS_EDIT_LOCK_WAIT_MS;
    /* Bounded by the deadline: each turn sleeps USERS_EDIT_LOCK_POLL_MS. */
    while (flock(edit->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) {
            continue;
        }
        if (errno != EWOULDBLOCK) {
            rc = -errno;
            err_set(err, err_bytes, "%s: flock: %s", lock_path, strerror(-rc));
            goto fail;
        }
        if (now_ms() >= deadline_ms) {
            rc = -EWOULDBLOCK;
            err_set(err, err_bytes, "%s: another edit holds the lock", lock_path);
            goto fail;
        }
        struct timespec pause = {.tv_nsec = USERS_EDIT_LOCK_POLL_MS * 1000000L};
        (void)nanosleep(&pause, NULL); /* EINTR only shortens the pause */
    }
    /* Edit the file a symlink points at, and leave the link in place. */
    char resolved[PATH_MAX];
    const char *path = realpath(users_path, resolved) != NULL ? resolved : users_path;
    edit->path = strdup(path);
    if (edit->path == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    int fd = open(edit->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            rc = -errno;
            err_set(err, err_bytes, "%s: %s", edit->path, strerror(-rc));
            goto fail;
        }
        edit->mode = USERS_EDIT_NEW_FILE_MODE;
        *edit_out = edit;
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
    } else if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
    } else if ((uintmax_t)st.st_size > USERS_EDIT_FILE_BYTES_MAX) {
        rc = -EFBIG;
    }
    if (rc == 0) {
        edit->capacity = (size_t)st.st_size + 1;
        edit->bytes = malloc(edit->capacity);
        rc = edit->bytes == NULL ? -ENOMEM : fd_read_all(fd, edit->bytes, (size_t)st.st_size);
        if (rc == -ENODATA) {
            rc = -EAGAIN; /* shrank while we read it: someone is writing it */
        }
    }
    (void)close(fd); /* read-only: a close error loses nothing */
    if (rc != 0) {
        err_set(err, err_bytes, "%s: %s", edit->path,
                rc == -EINVAL ? "not a regular file" : strerror(-rc));
        goto fail;
    }
    edit->len = (size_t)st.st_size;
    edit->is_existing = true;
    edit->dev = st.st_dev;
    edit->ino = st.st_ino;
    edit->size = st.st_size;
    edit->mtime = st.st_mtim;
    edit->mode = st.st_mode & 07777;
    edit->uid = st.st_uid;
    edit->gid = st.st_gid;
    *edit_out = edit;
    return 0;

fail:
    users_edit_close(&edit);
    return rc;
}

int
users_edit_add(struct users_edit *edit, const char *name, const char *hash)
{
    ASSERT(name[0] != '\0' && strchr(name, ':') == NULL);
    int rc = hash_check(hash);
    if (rc != 0) {
        return rc;
    }
    struct users_line line;
    bool is_crlf = false;
    bool is_first = true;
    for (size_t pos = 0; line_next(edit, pos, &line); pos = line.next) {
        if (is_first && line.next > line.end) {
            is_crlf = line.end > line.start && edit->bytes[line.end - 1] == '\r';
            is_first = false;
        }
        if (line_is_user(edit, &line, name)) {
            return -EEXIST;
        }
    }
    size_t name_len = strlen(name);
    size_t hash_len = strlen(hash);
    char text[1 + USERS_EDIT_NAME_BYTES_MAX + 1 + USERS_EDIT_HASH_BYTES_MAX + 2];
    ASSERT(name_len <= USERS_EDIT_NAME_BYTES_MAX);
    size_t n = 0;
    /* Keep the file's own line ending, and never glue onto a last line
     * that has none. */
    if (edit->len > 0 && edit->bytes[edit->len - 1] != '\n') {
        if (is_crlf) {
            text[n++] = '\r';
        }
        text[n++] = '\n';
    }
    memcpy(text + n, name, name_len);
    n += name_len;
    text[n++] = ':';
    memcpy(text + n, hash, hash_len);
    n += hash_len;
    if (is_crlf) {
        text[n++] = '\r';
    }
    text[n++] = '\n';
    rc = bytes_splice(edit, edit->len, 0, text, n);
    explicit_bzero(text, sizeof(text));
    return rc;
}

int
users_edit_passwd(struct users_edit *edit, const char *name, const char *hash)
{
    int rc = hash_check(hash);
    if (rc != 0) {
        return rc;
    }
    struct users_line line;
    for (size_t pos = 0; line_next(edit, pos, &line); pos = line.next) {
        if (!line_is_user(edit, &line, name)) {
            continue;
        }
        if (!line.has_colon) {
            /* "user" alone: a user without a password gets one. */
            char text[1 + USERS_EDIT_HASH_BYTES_MAX];
            text[0] = ':';
            size_t hash_len = strlen(hash);
            memcpy(text + 1, hash, hash_len);
            rc = bytes_splice(edit, line.content_end, 0, text, hash_len + 1);
            explicit_bzero(text, sizeof(text));
            return rc;
        }
        size_t field_start = line.name_end + 1;
        const char *colon = memchr(edit->bytes + field_start, ':', line.content_end - field_start);
        size_t field_end = colon != NULL ? (size_t)(colon - edit->bytes) : line.content_end;
        return bytes_splice(edit, field_start, field_end - field_start, hash, strlen(hash));
    }
    return -ENOENT;
}

int
users_edit_del(struct users_edit *edit, const char *name)
{
    bool is_found = false;
    struct users_line line;
    size_t pos = 0;
    /* Each turn either removes a line or moves past one: ends. */
    while (line_next(edit, pos, &line)) {
        if (!line_is_user(edit, &line, name)) {
            pos = line.next;
            continue;
        }
        is_found = true;
        int rc = bytes_splice(edit, line.start, line.next - line.start, NULL, 0);
        ASSERT(rc == 0); /* removing never grows */
    }
    return is_found ? 0 : -ENOENT;
}

bool
users_edit_has_user(const struct users_edit *edit, const char *name)
{
    struct users_line line;
    for (size_t pos = 0; line_next(edit, pos, &line); pos = line.next) {
        if (line_is_user(edit, &line, name)) {
            return true;
        }
    }
    return false;
}

void
users_edit_list(const struct users_edit *edit,
                void (*each)(void *arg, const char *name, size_t name_len), void *arg)
{
    struct users_line line;
    for (size_t pos = 0; line_next(edit, pos, &line); pos = line.next) {
        if (line.is_entry) {
            each(arg, edit->bytes + line.content_start, line.name_end - line.content_start);
        }
    }
}

int
users_edit_commit(struct users_edit *edit, char *err, size_t err_bytes)
{
    char tmp_path[PATH_MAX];
    int n = snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.XXXXXX", edit->path);
    if (n < 0 || (size_t)n >= sizeof(tmp_path)) {
        err_set(err, err_bytes, "%s: path too long", edit->path);
        return -ENAMETOOLONG;
    }
    char dir_path[PATH_MAX];
    memcpy(dir_path, edit->path, strlen(edit->path) + 1);
    char *slash = strrchr(dir_path, '/');
    if (slash == NULL) {
        (void)snprintf(dir_path, sizeof(dir_path), ".");
    } else if (slash == dir_path) {
        dir_path[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = mkostemp(tmp_path, O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        err_set(err, err_bytes, "%s: cannot create a temporary file: %s", dir_path, strerror(-rc));
        return rc;
    }
    const char *step = "fchmod";
    int rc = fchmod(fd, edit->mode) == 0 ? 0 : -errno;
    /* The daemon may read users_file as another user (0640 root:toaster):
     * keep the owner, or fail rather than lock the daemon out. */
    if (rc == 0 && edit->is_existing && (edit->uid != geteuid() || edit->gid != getegid())) {
        step = "keeping the owner (fchown)";
        rc = fchown(fd, edit->uid, edit->gid) == 0 ? 0 : -errno;
    }
    if (rc == 0) {
        step = "write";
        rc = fd_write_all(fd, edit->bytes, edit->len);
    }
    if (rc == 0) {
        step = "fsync";
        rc = fsync(fd) == 0 ? 0 : -errno;
    }
    if (close(fd) != 0 && rc == 0) {
        step = "close";
        rc = -errno;
    }
    if (rc == 0) {
        /* Someone who does not take our lock (an editor, a script) may have
         * written users_file since we read it; renaming over it would
         * throw their change away. A change in the instant between this
         * check and the rename remains possible; the lock covers toasterctl. */
        struct stat st;
        bool is_there = stat(edit->path, &st) == 0;
        if (!is_there && errno != ENOENT) {
            rc = -errno;
            step = "stat";
        } else if (is_there != edit->is_existing ||
                   (is_there &&
                    (st.st_dev != edit->dev || st.st_ino != edit->ino || st.st_size != edit->size ||
                     st.st_mtim.tv_sec != edit->mtime.tv_sec ||
                     st.st_mtim.tv_nsec != edit->mtime.tv_nsec))) {
            rc = -EAGAIN;
            step = "checking it is unchanged";
        }
    }
    if (rc == 0 && rename(tmp_path, edit->path) != 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc != 0) {
        int unlink_errno = unlink(tmp_path) != 0 && errno != ENOENT ? errno : 0;
        if (rc == -EAGAIN) {
            err_set(err, err_bytes,
                    "%s changed while it was being edited; nothing written, "
                    "run the command again",
                    edit->path);
        } else {
            err_set(err, err_bytes, "%s: %s: %s", tmp_path, step, strerror(-rc));
        }
        if (unlink_errno != 0 && err_bytes > 0) {
            size_t used = strlen(err);
            err_set(err + used, err_bytes - used, " (and %s could not be removed: %s)", tmp_path,
                    strerror(unlink_errno));
        }
        return rc;
    }
    /* The rename is in the directory: sync it, or a crash may bring the
     * old file back. */
    int dir_fd = open(dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || fsync(dir_fd) != 0) {
        rc = -errno;
        err_set(err, err_bytes, "%s: fsync of the directory: %s", dir_path, strerror(-rc));
    }
    if (dir_fd >= 0) {
        (void)close(dir_fd); /* read-only descriptor */
    }
    if (rc == 0) {
        /* A second commit compares with what we wrote. */
        struct stat st;
        if (stat(edit->path, &st) == 0) {
            edit->is_existing = true;
            edit->dev = st.st_dev;
            edit->ino = st.st_ino;
            edit->size = st.st_size;
            edit->mtime = st.st_mtim;
            edit->uid = st.st_uid;
            edit->gid = st.st_gid;
        }
    }
    return rc;
}

void
users_edit_close(struct users_edit **edit_ptr)
{
    struct users_edit *edit = *edit_ptr;
    if (edit == NULL) {
        return;
    }
    if (edit->lock_fd >= 0) {
        /* Closing drops the flock; the lock file stays for the next edit. */
        (void)close(edit->lock_fd);
    }
    if (edit->bytes != NULL) {
        explicit_bzero(edit->bytes, edit->capacity);
        free(edit->bytes);
    }
    free(edit->path);
    free(edit);
    *edit_ptr = NULL;
}

/* ---- helpers ----------------------------------------------------------------- */

static void
err_set(char *err, size_t err_bytes, const char *fmt, ...)
{
    if (err_bytes == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, err_bytes, fmt, ap);
    va_end(ap);
    if (n < 0) {
        err[0] = '\0';
    }
}

/* The line at pos, read as store/recipients.c reads it. Returns false at
 * the end of the file. */
static bool
line_next(const struct users_edit *edit, size_t pos, struct users_line *line)
{
    if (pos >= edit->len) {
        return false;
    }
    const char *bytes = edit->bytes;
    const char *newline = memchr(bytes + pos, '\n', edit->len - pos);
    line->start = pos;
    line->end = newline != NULL ? (size_t)(newline - bytes) : edit->len;
    line->next = newline != NULL ? line->end + 1 : edit->len;
    size_t end = line->end;
    if (end > pos && bytes[end - 1] == '\r') {
        end--;
    }
    size_t start = pos;
    while (start < end && ascii_is_blank(bytes[start])) {
        start++;
    }
    while (end > start && ascii_is_blank(bytes[end - 1])) {
        end--;
    }
    line->content_start = start;
    line->content_end = end;
    line->is_entry = start < end && bytes[start] != '#';
    const char *colon = memchr(bytes + start, ':', end - start);
    line->has_colon = colon != NULL;
    line->name_end = colon != NULL ? (size_t)(colon - bytes) : end;
    return true;
}

/* Does the entry name the user (canonical form)? ASCII case-insensitive,
 * with one trailing dot of the entry's domain ignored, as the loader does. */
static bool
line_is_user(const struct users_edit *edit, const struct users_line *line, const char *name)
{
    if (!line->is_entry) {
        return false;
    }
    const char *entry = edit->bytes + line->content_start;
    size_t entry_len = line->name_end - line->content_start;
    size_t name_len = strlen(name);
    if (entry_len == name_len + 1 && entry[name_len] == '.') {
        entry_len--;
    }
    if (entry_len != name_len) {
        return false;
    }
    for (size_t i = 0; i < name_len; i++) {
        if (ascii_lower((unsigned char)entry[i]) != (unsigned char)name[i]) {
            return false;
        }
    }
    return true;
}

/* A hash goes into one field of one line. */
static int
hash_check(const char *hash)
{
    size_t len = strnlen(hash, USERS_EDIT_HASH_BYTES_MAX + 1);
    if (len == 0 || len > USERS_EDIT_HASH_BYTES_MAX || strpbrk(hash, ":\r\n") != NULL) {
        return -EINVAL;
    }
    return 0;
}

/* Replace remove_len bytes at at with insert_len bytes. The old buffer is
 * wiped before it is freed: it holds hashes. */
static int
bytes_splice(struct users_edit *edit, size_t at, size_t remove_len, const char *insert,
             size_t insert_len)
{
    ASSERT(at <= edit->len && remove_len <= edit->len - at);
    size_t new_len = edit->len - remove_len + insert_len;
    if (new_len > USERS_EDIT_FILE_BYTES_MAX) {
        return -EFBIG;
    }
    if (new_len + 1 > edit->capacity) {
        size_t capacity = new_len + 1 + new_len / 4;
        char *bytes = malloc(capacity);
        if (bytes == NULL) {
            return -ENOMEM;
        }
        if (edit->len > 0) {
            memcpy(bytes, edit->bytes, edit->len);
        }
        if (edit->bytes != NULL) {
            explicit_bzero(edit->bytes, edit->capacity);
            free(edit->bytes);
        }
        edit->bytes = bytes;
        edit->capacity = capacity;
    }
    memmove(edit->bytes + at + insert_len, edit->bytes + at + remove_len,
            edit->len - at - remove_len);
    if (insert_len > 0) {
        memcpy(edit->bytes + at, insert, insert_len);
    }
    if (new_len < edit->len) {
        explicit_bzero(edit->bytes + new_len, edit->len - new_len);
    }
    edit->len = new_len;
    return 0;
}

static int64_t
now_ms(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}
