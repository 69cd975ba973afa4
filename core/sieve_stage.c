/*
 * core/sieve_stage.c - Sieve at delivery (see sieve_stage.h): runs each
 * local mailbox's chain of scripts over an accepted message and carries
 * out the result through store/delivery's placements.
 *
 * Owns the stage state of a message between the worker that runs the
 * scripts, the reactor that resolves addresses and the committer that
 * records duplicate marks and logs. Reads the message with pread (bounded
 * by SIEVE_RUN_HEADER_BYTES_MAX + SIEVE_RUN_BODY_BYTES_MAX), writes the
 * files a message gets of its own (an edited header with the original
 * body, vacation replies, rejections) as unnamed files in the spool
 * directory, each synced before the message goes to the committer, so
 * they are as durable as any copy when the client hears 250. Creates
 * folders for fileinto :create and updates dovecot-keywords under
 * Dovecot's dotlock. Blocking file I/O: sieve_stage_run on workers only.
 */
#define _GNU_SOURCE
#include "core/sieve_stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/array_grow.h"
#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"
#include "core/mutf7.h"
#include "filters/message_fields.h"
#include "filters/sieve_exec.h"
#include "filters/sieve_reject.h"
#include "filters/sieve_run.h"
#include "filters/sieve_vacation.h"
#include "store/delivery.h"
#include "store/maildir_dotlock.h"
#include "store/maildir_folders.h"
#include "store/maildir_keywords.h"
#include "store/maildir_name.h"
#include "store/recipients.h"
#include "store/spool.h"


#define SIEVE_STAGE_ERROR_BYTES SIEVE_EXEC_ERROR_BYTES
#define SIEVE_STAGE_KEYWORD_LOCK_TRIES 20 /* 50 ms apart: a second, then no keywords */
#define SIEVE_STAGE_RETURN_PATH_NULL "Return-Path: <>\r\n"

/* A redirect of the message, or a generated message, to an address that
 * only the reactor can tell local from remote. */
struct stage_address {
    uint32_t address_offset; /* in text */
    uint32_t user_offset;    /* the mailbox it is on behalf of (its fallback) */
    int32_t  content;        /* -1: the message itself (redirect); else a reply */
};

struct sieve_stage {
    char                   queue_id[SPOOL_QUEUE_ID_BYTES];
    /* Strings: addresses, users, and the log lines (each NUL-terminated). */
    char                  *text;
    size_t                 text_len;
    size_t                 text_capacity;
    uint32_t              *log_offsets; /* one line per recipient */
    size_t                 log_count;
    size_t                 log_capacity;
    struct stage_address  *addresses;
    size_t                 address_count;
    size_t                 address_capacity;
    /* Results with duplicate marks, for sieve_exec_commit once durable. */
    struct sieve_actions **commits;
    size_t                 commit_count;
    size_t                 commit_capacity;
};

static struct {
    struct sieve_exec *exec;
    char               data_dir[SPOOL_PATH_BYTES];
    char               hostname[256];
    bool               is_fsync_on;
    int                spool_dir_fd;
} stage_config = { .spool_dir_fd = -1 };

/* The message as the scripts see it, read once for every mailbox. */
struct stage_read {
    char    *bytes;
    size_t   len;
    size_t   header_len;  /* up to and with the blank line, or all read */
    uint64_t body_offset; /* where the body starts in the spool file */
    bool     has_body;
};

/* One mailbox's line for the log, built while its actions run. */
struct stage_line {
    char   text[1024];
    size_t len;
};

static void stage_line_add(struct stage_line *line, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- small helpers ----------------------------------------------------------- */

static int
stage_text(struct sieve_stage *stage, const char *text, size_t len, uint32_t *offset_out)
{
    if (stage->text_len + len + 1 > stage->text_capacity) {
        size_t capacity = stage->text_capacity ? stage->text_capacity : 1024;
        while (capacity < stage->text_len + len + 1) {
            capacity *= 2;
        }
        char *grown = realloc(stage->text, capacity);
        if (grown == NULL) {
            return -ENOMEM;
        }
        stage->text = grown;
        stage->text_capacity = capacity;
    }
    ASSERT(stage->text_len + len + 1 < UINT32_MAX);
    memcpy(stage->text + stage->text_len, text, len);
    stage->text[stage->text_len + len] = '\0';
    *offset_out = (uint32_t)stage->text_len;
    stage->text_len += len + 1;
    return 0;
}

static void
stage_line_add(struct stage_line *line, const char *format, ...)
{
    if (line->len + 3 >= sizeof(line->text)) {
        return; /* the line is long enough to say what happened */
    }
    if (line->len > 0) {
        line->text[line->len++] = ';';
        line->text[line->len++] = ' ';
    }
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line->text + line->len, sizeof(line->text) - line->len, format, args);
    va_end(args);
    if (n > 0) {
        line->len += (size_t)n < sizeof(line->text) - line->len ? (size_t)n
                                                                 : sizeof(line->text) - line->len - 1;
    }
    line->text[line->len] = '\0';
}

static int
stage_log_keep(struct sieve_stage *stage, const char *user, const struct stage_line *line)
{
    char text[sizeof(line->text) + SMTP_ADDRESS_BYTES_MAX + 64];
    int n = snprintf(text, sizeof(text), "%s: sieve: %s: %s", stage->queue_id, user,
                     line->len > 0 ? line->text : "no action");
    if (n < 0) {
        return -EINVAL;
    }
    size_t len = (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
    int rc = array_grow((void **)&stage->log_offsets, &stage->log_capacity, stage->log_count,
                  sizeof(*stage->log_offsets));
    if (rc == 0) {
        rc = stage_text(stage, text, len, &stage->log_offsets[stage->log_count]);
    }
    if (rc == 0) {
        stage->log_count++;
    }
    return rc;
}

static int
stage_address_add(struct sieve_stage *stage, const char *address, const char *user, int content)
{
    struct stage_address entry = { .content = content };
    int rc = array_grow((void **)&stage->addresses, &stage->address_capacity, stage->address_count,
                  sizeof(*stage->addresses));
    if (rc == 0) {
        rc = stage_text(stage, address, strlen(address), &entry.address_offset);
    }
    if (rc == 0) {
        rc = stage_text(stage, user, strlen(user), &entry.user_offset);
    }
    if (rc == 0) {
        stage->addresses[stage->address_count++] = entry;
    }
    return rc;
}

/* Keep a copy of the result's duplicate marks for the commit. */
static int
stage_commit_add(struct sieve_stage *stage, const struct sieve_actions *actions)
{
    int rc = array_grow((void **)&stage->commits, &stage->commit_capacity, stage->commit_count,
                  sizeof(*stage->commits));
    if (rc != 0) {
        return rc;
    }
    struct sieve_actions *marks = malloc(sizeof(*marks));
    if (marks == NULL) {
        return -ENOMEM;
    }
    sieve_actions_init(marks);
    marks->duplicate_count = actions->duplicate_count;
    memcpy(marks->duplicates, actions->duplicates,
           actions->duplicate_count * sizeof(actions->duplicates[0]));
    sieve_actions_finish(marks);
    stage->commits[stage->commit_count++] = marks;
    return 0;
}

/* <data_dir>/mail/<domain>/<local>/Maildir and the home above it. */
static int
user_paths(const char *user, char *maildir, char *home, size_t bytes)
{
    int rc = recipients_maildir_path(stage_config.data_dir, user, maildir, bytes);
    if (rc != 0) {
        return rc;
    }
    size_t len = strlen(maildir);
    ASSERT(len > strlen("/Maildir"));
    memcpy(home, maildir, len - strlen("/Maildir"));
    home[len - strlen("/Maildir")] = '\0';
    return 0;
}

/* ---- reading the message ------------------------------------------------------ */

static int
message_read(const struct delivery_message *message, struct stage_read *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t want64 = message->size;
    if (want64 > (uint64_t)SIEVE_RUN_HEADER_BYTES_MAX + SIEVE_RUN_BODY_BYTES_MAX) {
        want64 = (uint64_t)SIEVE_RUN_HEADER_BYTES_MAX + SIEVE_RUN_BODY_BYTES_MAX;
    }
    size_t want = (size_t)want64;
    out->bytes = malloc(want + 1);
    if (out->bytes == NULL) {
        return -ENOMEM;
    }
    while (out->len < want) {
        ssize_t n = pread(message->spool_fd, out->bytes + out->len, want - out->len,
                          (off_t)out->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int rc = n < 0 ? -errno : -EIO;
            free(out->bytes);
            out->bytes = NULL;
            return rc;
        }
        out->len += (size_t)n;
    }
    out->bytes[out->len] = '\0';
    /* The header ends at the first empty line (CRLF as stored; LF too). */
    size_t scan = out->len < SIEVE_RUN_HEADER_BYTES_MAX ? out->len : SIEVE_RUN_HEADER_BYTES_MAX;
    out->header_len = scan;
    out->body_offset = message->size;
    for (size_t i = 0; i + 1 < scan; i++) {
        if (out->bytes[i] != '\n') {
            continue;
        }
        if (out->bytes[i + 1] == '\n') {
            out->header_len = i + 2;
            break;
        }
        if (i + 2 < out->len && out->bytes[i + 1] == '\r' && out->bytes[i + 2] == '\n') {
            out->header_len = i + 3;
            break;
        }
    }
    if (out->header_len < scan || (out->header_len == scan && scan < out->len)) {
        out->has_body = true;
        out->body_offset = out->header_len;
    }
    return 0;
}

/* ---- files of the message's own ------------------------------------------------- */

/* An unnamed file in the spool directory holding prefix, bytes and then
 * the spool file's bytes from copy_offset to its end, synced. Returns the
 * fd or -errno. */
static int
own_file(const struct delivery_message *message, const char *prefix, const char *bytes,
         size_t len, uint64_t copy_offset, uint64_t *size_out)
{
    int fd = openat(stage_config.spool_dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    size_t prefix_len = prefix != NULL ? strlen(prefix) : 0;
    int rc = prefix_len > 0 ? fd_write_all(fd, prefix, prefix_len) : 0;
    if (rc == 0) {
        rc = fd_write_all(fd, bytes, len);
    }
    loff_t in_offset = (loff_t)copy_offset;
    while (rc == 0 && (uint64_t)in_offset < message->size) {
        ssize_t n = copy_file_range(message->spool_fd, &in_offset, fd, NULL,
                                    (size_t)(message->size - (uint64_t)in_offset), 0);
        if (n < 0) {
            rc = -errno;
        } else if (n == 0) {
            rc = -EIO;
        }
    }
    if (rc == 0 && stage_config.is_fsync_on && fdatasync(fd) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)close(fd); /* unnamed: it vanishes */
        return rc;
    }
    *size_out = prefix_len + len + (message->size - copy_offset);
    return fd;
}

/* A generated message (reply, rejection) as a content of the message:
 * stored with "Return-Path: <>" first, as local delivery writes it for
 * the null sender. Returns the content number or -errno. */
static int
generated_content(struct delivery_message *message, const char *bytes, size_t len)
{
    uint64_t size = 0;
    int rc = delivery_message_placements_begin(message);
    if (rc != 0) {
        return rc;
    }
    int fd = own_file(message, SIEVE_STAGE_RETURN_PATH_NULL, bytes, len, message->size, &size);
    if (fd < 0) {
        return fd;
    }
    return delivery_message_add_content(message, fd, size);
}

/* ---- flags and keywords ------------------------------------------------------ */

struct stage_flags {
    uint32_t    system;
    const char *keywords[MAILDIR_KEYWORDS_MAX];
    size_t      keyword_lens[MAILDIR_KEYWORDS_MAX];
    size_t      keyword_count;
};

/* imap4flags' list ("\\Seen $Label1") into Maildir letters and keywords. */
static void
flags_parse(const char *flags, struct stage_flags *out)
{
    memset(out, 0, sizeof(*out));
    static const struct {
        const char *name;
        uint32_t    bit;
    } system[] = {
        { "\\Seen", MAILDIR_FLAG_SEEN },       { "\\Answered", MAILDIR_FLAG_REPLIED },
        { "\\Flagged", MAILDIR_FLAG_FLAGGED }, { "\\Deleted", MAILDIR_FLAG_TRASHED },
        { "\\Draft", MAILDIR_FLAG_DRAFT },
    };
    const char *p = flags;
    /* The interpreter bounds the list; the loop is bounded by its length. */
    while (p != NULL && *p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *end = p;
        while (*end != '\0' && *end != ' ') {
            end++;
        }
        size_t len = (size_t)(end - p);
        if (len == 0) {
            break;
        }
        bool is_system = false;
        for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++) {
            if (strlen(system[i].name) == len && strncasecmp(system[i].name, p, len) == 0) {
                out->system |= system[i].bit;
                is_system = true;
            }
        }
        if (!is_system && p[0] != '\\' && maildir_keywords_is_valid(p, len) &&
            out->keyword_count < MAILDIR_KEYWORDS_MAX) {
            out->keywords[out->keyword_count] = p;
            out->keyword_lens[out->keyword_count++] = len;
        }
        p = end;
    }
}

static void
keywords_read(int dir_fd, struct maildir_keywords *kw)
{
    maildir_keywords_init(kw);
    char buf[MAILDIR_KEYWORDS_FILE_BYTES_MAX + 1];
    int fd = openat(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return; /* none yet */
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n > 0) {
        (void)maildir_keywords_parse(kw, buf, (size_t)n, NULL);
    }
}

/* The keyword letters of flags in the folder at path: those missing are
 * added to its dovecot-keywords under the dotlock (as Dovecot and our IMAP
 * side do). Keywords that cannot get a letter (26 used, the lock held for
 * a second) are left out, logged. Returns the bits. */
static uint32_t
keywords_letters(const char *queue_id, const char *path, const struct stage_flags *flags)
{
    if (flags->keyword_count == 0) {
        return 0;
    }
    int dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        log_warning("%s: sieve: keywords of %s: %s", queue_id, path, strerror(errno));
        return 0;
    }
    struct maildir_keywords kw;
    keywords_read(dir_fd, &kw);
    uint32_t bits = 0;
    bool is_missing = false;
    for (size_t i = 0; i < flags->keyword_count; i++) {
        int at = maildir_keywords_lookup(&kw, flags->keywords[i], flags->keyword_lens[i]);
        if (at >= 0) {
            bits |= UINT32_C(1) << at;
        } else {
            is_missing = true;
        }
    }
    if (!is_missing) {
        (void)close(dir_fd);
        return bits;
    }
    int lock_fd = -1;
    int rc = -EAGAIN;
    for (int tries = 0; rc == -EAGAIN && tries < SIEVE_STAGE_KEYWORD_LOCK_TRIES; tries++) {
        if (tries > 0) {
            (void)usleep(50 * 1000);
        }
        rc = maildir_dotlock_take(dir_fd, MAILDIR_KEYWORDS_FILE_NAME,
                                  MAILDIR_DOTLOCK_KEYWORDS_STALE_S, time(NULL), &lock_fd);
    }
    if (rc != 0) {
        log_warning("%s: sieve: cannot lock %s/%s: %s; keywords left out", queue_id, path,
                    MAILDIR_KEYWORDS_FILE_NAME, strerror(-rc));
        (void)close(dir_fd);
        return bits;
    }
    keywords_read(dir_fd, &kw); /* again, under the lock */
    bits = 0;
    for (size_t i = 0; i < flags->keyword_count; i++) {
        int at = maildir_keywords_add(&kw, flags->keywords[i], flags->keyword_lens[i]);
        if (at >= 0) {
            bits |= UINT32_C(1) << at;
        } else {
            log_warning("%s: sieve: keyword %.*s not stored in %s: %s", queue_id,
                        (int)flags->keyword_lens[i], flags->keywords[i], path, strerror(-at));
        }
    }
    char buf[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    size_t len = 0;
    rc = maildir_keywords_serialize(&kw, buf, sizeof(buf), &len);
    if (rc == 0) {
        rc = maildir_dotlock_replace(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, lock_fd, buf, len);
    } else {
        (void)maildir_dotlock_release(dir_fd, MAILDIR_KEYWORDS_FILE_NAME, lock_fd);
    }
    (void)close(dir_fd);
    if (rc != 0) {
        log_warning("%s: sieve: cannot write %s/%s: %s; keywords left out", queue_id, path,
                    MAILDIR_KEYWORDS_FILE_NAME, strerror(-rc));
        return 0;
    }
    return bits;
}

/* ---- folders ----------------------------------------------------------------- */

/* The storage name of fileinto's mailbox (UTF-8, '.' the separator as in
 * Dovecot's Maildir++ namespace) in name_out: "" for INBOX. Returns 0,
 * -EINVAL (not a name a folder can have), or -ENOENT (no such folder and
 * no :create). A folder made for :create is durable when this returns. */
static int
folder_resolve(const char *root, const char *mailbox, size_t len, bool is_create, char *name_out,
               size_t name_bytes)
{
    if (maildir_folders_is_inbox(mailbox, len)) {
        name_out[0] = '\0';
        return 0;
    }
    size_t name_len = 0;
    int rc = mutf7_encode(span_make(mailbox, len), name_out, name_bytes - 1, &name_len);
    if (rc != 0) {
        return -EINVAL;
    }
    name_out[name_len] = '\0';
    if (maildir_folders_name_check(name_out, name_len) != 0) {
        return -EINVAL;
    }
    char path[SPOOL_PATH_BYTES];
    rc = maildir_folders_path(root, name_out, path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 0;
    }
    if (!is_create) {
        return -ENOENT;
    }
    rc = maildir_folders_make_root(root);
    if (rc == 0) {
        rc = maildir_folders_create(root, name_out, 0);
    }
    return rc == -EEXIST ? 0 : rc;
}

/* ---- one mailbox ------------------------------------------------------------- */

/* What the run over all mailboxes carries from one to the next. */
/* The Message-ID field's value (trimmed, unfolded lines kept) in the
 * header read, or NULL. */
static const char *
message_id(const struct stage_read *read, size_t *len_out)
{
    size_t pos = 0;
    struct message_field field;
    while (message_fields_next(read->bytes, read->header_len, &pos, &field)) {
        if (!message_field_is(read->bytes, &field, "Message-ID")) {
            continue;
        }
        size_t start = field.value_start;
        size_t end = field.value_end;
        while (start < end && (read->bytes[start] == ' ' || read->bytes[start] == '\t')) {
            start++;
        }
        while (end > start && (read->bytes[end - 1] == ' ' || read->bytes[end - 1] == '\t' ||
                               read->bytes[end - 1] == '\r')) {
            end--;
        }
        *len_out = end - start;
        return read->bytes + start;
    }
    *len_out = 0;
    return NULL;
}

struct stage_run {
    struct delivery_message *message;
    struct sieve_stage      *stage;
    const struct stage_read *read;
    bool                     is_virus_scanned;
    bool                    *is_plain;       /* per mailbox: one INBOX copy, nothing else */
    size_t                   rejected_count;
    char                     reason[SMTP_REPLY_LINE_BYTES_MAX]; /* the first rejection's */
    /* Rejections for the sender, composed once all mailboxes are known. */
    struct {
        size_t   mailbox;
        uint32_t reason_offset; /* in the stage's text */
    }                       *rejections;
    size_t                   rejection_count;
    size_t                   rejection_capacity;
};

/* From now on each mailbox's copies are listed: the mailboxes before that
 * kept plainly get their INBOX copy as a placement. */
static int
switch_to_placements(struct stage_run *run, size_t upto)
{
    if (delivery_message_is_placed(run->message)) {
        return 0;
    }
    int rc = delivery_message_placements_begin(run->message);
    for (size_t j = 0; j < upto && rc == 0; j++) {
        if (run->is_plain[j]) {
            rc = delivery_message_place(run->message, delivery_message_mailbox(run->message, j),
                                        "", 0, 0, -1);
        }
    }
    return rc;
}

/* Whether a finished result is "one INBOX copy, unflagged, unedited". */
static bool
result_is_plain(const struct sieve_actions *actions)
{
    return actions->count == 1 && actions->items[0].type == SIEVE_ACTION_KEEP &&
           actions->items[0].flags == NULL && actions->header == NULL;
}

/* Place one copy (keep or fileinto) with its flags. */
static int
place_copy(struct stage_run *run, const char *user, const char *root, const char *folder,
           const char *flags_text, int content)
{
    struct stage_flags flags;
    flags_parse(flags_text, &flags);
    uint32_t keywords = 0;
    if (flags.keyword_count > 0) {
        char path[SPOOL_PATH_BYTES];
        int rc = maildir_folders_make_root(root); /* a first mail may come with keywords */
        if (rc == 0) {
            rc = maildir_folders_path(root, folder[0] == '\0' ? "INBOX" : folder, path,
                                      sizeof(path));
        }
        if (rc == 0) {
            keywords = keywords_letters(run->message->queue_id, path, &flags);
        }
    }
    return delivery_message_place(run->message, user, folder, flags.system, keywords, content);
}

static int
run_mailbox(struct stage_run *run, size_t index)
{
    struct delivery_message *message = run->message;
    const char *user = delivery_message_mailbox(message, index);
    char maildir[SPOOL_PATH_BYTES];
    char home[SPOOL_PATH_BYTES];
    int rc = user_paths(user, maildir, home, sizeof(maildir));
    if (rc != 0) {
        log_error("%s: sieve: %s: no home: %s", message->queue_id, user, strerror(-rc));
        run->is_plain[index] = true; /* INBOX, where delivery would put it */
        return 0;
    }
    struct tm tm;
    time_t now = time(NULL);
    int32_t zone_minutes = localtime_r(&now, &tm) != NULL ? (int32_t)(tm.tm_gmtoff / 60) : 0;
    const struct stage_read *read = run->read;
    struct sieve_message sieve_message = {
        .header = read->bytes,
        .header_len = read->header_len,
        .body = read->has_body ? read->bytes + read->header_len : NULL,
        .body_len = read->has_body ? read->len - read->header_len : 0,
        .envelope_from = message->mail_from,
        .envelope_to = delivery_message_mailbox_rcpt(message, index)[0] != '\0'
                           ? delivery_message_mailbox_rcpt(message, index)
                           : user,
        .auth_user = message->user[0] != '\0' ? message->user : NULL,
        .user = user,
        .size_bytes = message->size,
        .now_unix = (int64_t)now,
        .zone_minutes = zone_minutes,
        .is_virus_scanned = run->is_virus_scanned,
    };
    struct sieve_exec_user exec_user = { .user = user, .home = home, .maildir = maildir };
    struct sieve_actions actions;
    char err[SIEVE_STAGE_ERROR_BYTES] = "";
    rc = sieve_exec_run(stage_config.exec, &exec_user, &sieve_message, &actions, err,
                        sizeof(err));
    if (rc < 0) {
        /* The result is the implicit keep (RFC 5228 2.10.6). */
        log_error("%s: sieve: %s: %s", message->queue_id, user, err[0] ? err : strerror(-rc));
    }
    struct stage_line line = { .len = 0 };
    if (actions.duplicate_count > 0) {
        rc = stage_commit_add(run->stage, &actions);
        if (rc != 0) {
            sieve_actions_free(&actions);
            return rc;
        }
    }
    if (result_is_plain(&actions)) {
        run->is_plain[index] = true;
        if (!delivery_message_is_placed(message)) {
            stage_line_add(&line, "stored mail into mailbox 'INBOX'");
            rc = stage_log_keep(run->stage, user, &line);
            sieve_actions_free(&actions);
            return rc;
        }
    }
    rc = switch_to_placements(run, index);
    /* An edited header: this mailbox's copies are a file of their own. */
    int content = -1;
    bool is_rejected = false;
    for (size_t a = 0; a < actions.count && rc == 0; a++) {
        const struct sieve_action *action = &actions.items[a];
        if (actions.header != NULL && content == -1 &&
            (action->type == SIEVE_ACTION_KEEP || action->type == SIEVE_ACTION_FILEINTO)) {
            uint64_t size = 0;
            int fd = own_file(message, NULL, actions.header, actions.header_len,
                              read->body_offset, &size);
            if (fd >= 0) {
                content = delivery_message_add_content(message, fd, size);
                if (content < 0) {
                    rc = content;
                    break;
                }
            } else {
                log_error("%s: sieve: %s: cannot write the edited header: %s; storing the "
                          "message as received", message->queue_id, user, strerror(-fd));
                content = -2; /* tried: the original then */
            }
        }
        int use = content >= 0 ? content : -1;
        switch (action->type) {
        case SIEVE_ACTION_KEEP:
            rc = place_copy(run, user, maildir, "", action->flags, use);
            stage_line_add(&line, "stored mail into mailbox 'INBOX'");
            break;
        case SIEVE_ACTION_FILEINTO: {
            char folder[MAILDIR_FOLDERS_NAME_BYTES_MAX + 2];
            int frc = folder_resolve(maildir, action->target, action->target_len,
                                     action->is_create, folder, sizeof(folder));
            if (frc != 0) {
                /* As Pigeonhole without lda_mailbox_autocreate: INBOX. */
                log_warning("%s: sieve: %s: mailbox '%s' %s; storing into INBOX",
                            message->queue_id, user, action->target,
                            frc == -ENOENT ? "does not exist" : "cannot be used");
                folder[0] = '\0';
            }
            rc = place_copy(run, user, maildir, folder, action->flags, use);
            stage_line_add(&line, "stored mail into mailbox '%s'",
                           folder[0] == '\0' ? "INBOX" : action->target);
            break;
        }
        case SIEVE_ACTION_DISCARD:
            stage_line_add(&line, "discarded");
            break;
        case SIEVE_ACTION_REDIRECT: {
            size_t id_len = 0;
            const char *id = message_id(run->read, &id_len);
            if (!sieve_exec_redirect_claim(stage_config.exec, user, id, id_len,
                                           action->target)) {
                /* Back around a loop (Pigeonhole's guard): it went out
                 * once; sending it again would only circle. */
                stage_line_add(&line, "not forwarded to <%s> again: redirect loop",
                               action->target);
                break;
            }
            rc = stage_address_add(run->stage, action->target, user, -1);
            stage_line_add(&line, "forwarded to <%s>", action->target);
            break;
        }
        case SIEVE_ACTION_REJECT:
        case SIEVE_ACTION_EREJECT:
            if (!is_rejected) {
                is_rejected = true;
                if (run->rejected_count++ == 0) {
                    (void)snprintf(run->reason, sizeof(run->reason), "%.*s",
                                   (int)action->target_len, action->target);
                }
                rc = array_grow((void **)&run->rejections, &run->rejection_capacity,
                          run->rejection_count, sizeof(*run->rejections));
                if (rc == 0) {
                    run->rejections[run->rejection_count].mailbox = index;
                    rc = stage_text(run->stage, action->target, action->target_len,
                                    &run->rejections[run->rejection_count].reason_offset);
                }
                if (rc == 0) {
                    run->rejection_count++;
                }
                stage_line_add(&line, "rejected");
            }
            break;
        case SIEVE_ACTION_VACATION: {
            const struct sieve_vacation *vacation = action->vacation;
            const char *why = NULL;
            const char *to = vacation->reply_to != NULL ? vacation->reply_to : message->mail_from;
            if (!sieve_vacation_should_reply(&sieve_message, vacation, &why)) {
                stage_line_add(&line, "no vacation response to <%s>: %s", to,
                               why != NULL ? why : "not allowed");
                break;
            }
            if (!sieve_exec_vacation_claim(stage_config.exec, user, to, vacation)) {
                stage_line_add(&line, "vacation response to <%s> already sent", to);
                break;
            }
            char *bytes = NULL;
            size_t len = 0;
            int vrc = sieve_vacation_compose(&sieve_message, vacation, stage_config.hostname,
                                             (int64_t)now, &bytes, &len);
            int reply = vrc == 0 ? generated_content(message, bytes, len) : vrc;
            free(bytes);
            if (reply < 0) {
                log_error("%s: sieve: %s: vacation response to <%s> not made: %s",
                          message->queue_id, user, to, strerror(-reply));
                break;
            }
            rc = stage_address_add(run->stage, to, user, reply);
            stage_line_add(&line, "sent vacation response to <%s>", to);
            break;
        }
        }
    }
    if (rc == 0) {
        rc = stage_log_keep(run->stage, user, &line);
    }
    sieve_actions_free(&actions);
    return rc;
}

/* The rejections for the sender (not all recipients rejected). */
static int
rejections_send(struct stage_run *run)
{
    struct delivery_message *message = run->message;
    for (size_t i = 0; i < run->rejection_count; i++) {
        const char *user = delivery_message_mailbox(message, run->rejections[i].mailbox);
        if (message->mail_from[0] == '\0') {
            continue; /* never to the null sender */
        }
        const char *reason = run->stage->text + run->rejections[i].reason_offset;
        char *bytes = NULL;
        size_t len = 0;
        int rc = sieve_reject_compose(run->read->bytes, run->read->header_len, message->mail_from,
                                      user, reason, strlen(reason), stage_config.hostname,
                                      (int64_t)time(NULL), &bytes, &len);
        int content = rc == 0 ? generated_content(message, bytes, len) : rc;
        free(bytes);
        if (content < 0) {
            /* No report means the sender would never learn: the message
             * stays with its recipient instead. */
            log_error("%s: sieve: %s: rejection to <%s> not made (%s): kept in INBOX",
                      message->queue_id, user, message->mail_from, strerror(-content));
            rc = delivery_message_place(message, user, "", 0, 0, -1);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        rc = stage_address_add(run->stage, message->mail_from, user, content);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* "550 5.7.1 <reason>" on one line, within reply_bytes. */
static void
refusal_reply(const char *reason, char *reply, size_t reply_bytes)
{
    int n = snprintf(reply, reply_bytes, "550 5.7.1 ");
    ASSERT(n > 0 && (size_t)n < reply_bytes);
    size_t len = (size_t)n;
    /* Control bytes (a multi-line reason) become spaces. */
    for (const char *p = reason; *p != '\0' && len + 1 < reply_bytes; p++) {
        unsigned char c = (unsigned char)*p;
        reply[len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    if (len == (size_t)n) {
        len += (size_t)snprintf(reply + len, reply_bytes - len, "Message rejected");
    }
    reply[len < reply_bytes ? len : reply_bytes - 1] = '\0';
}

/* ---- public -------------------------------------------------------------------- */

int
sieve_stage_init(struct sieve_exec *exec, const char *data_dir, const char *hostname,
                 bool is_fsync_on)
{
    stage_config.exec = exec;
    stage_config.is_fsync_on = is_fsync_on;
    if ((size_t)snprintf(stage_config.data_dir, sizeof(stage_config.data_dir), "%s", data_dir) >=
            sizeof(stage_config.data_dir) ||
        (size_t)snprintf(stage_config.hostname, sizeof(stage_config.hostname), "%s", hostname) >=
            sizeof(stage_config.hostname)) {
        return -ENAMETOOLONG;
    }
    if (exec == NULL) {
        return 0;
    }
    char spool[SPOOL_PATH_BYTES];
    int rc = spool_dir_path(data_dir, spool, sizeof(spool));
    if (rc != 0) {
        return rc;
    }
    stage_config.spool_dir_fd = open(spool, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return stage_config.spool_dir_fd >= 0 ? 0 : -errno;
}

bool
sieve_stage_is_active(void)
{
    return stage_config.exec != NULL;
}

void
sieve_stage_destroy(void)
{
    if (stage_config.spool_dir_fd >= 0) {
        (void)close(stage_config.spool_dir_fd);
    }
    stage_config.spool_dir_fd = -1;
    stage_config.exec = NULL;
}

enum sieve_stage_next
sieve_stage_run(struct delivery_message *message, bool is_virus_scanned,
                struct sieve_stage **stage_out, char *reply, size_t reply_bytes)
{
    ASSERT(stage_config.exec != NULL);
    ASSERT(reply_bytes >= SMTP_REPLY_LINE_BYTES_MAX);
    *stage_out = NULL;
    if (message->mailbox_count == 0) {
        return SIEVE_STAGE_SUBMIT;
    }
    struct stage_read read;
    int rc = message_read(message, &read);
    if (rc != 0) {
        log_error("%s: sieve: cannot read the message: %s", message->queue_id, strerror(-rc));
        return SIEVE_STAGE_DEFER;
    }
    struct stage_run run = {
        .message = message,
        .read = &read,
        .is_virus_scanned = is_virus_scanned,
        .stage = calloc(1, sizeof(struct sieve_stage)),
        .is_plain = calloc(message->mailbox_count, sizeof(bool)),
    };
    rc = run.stage != NULL && run.is_plain != NULL ? 0 : -ENOMEM;
    if (rc == 0) {
        memcpy(run.stage->queue_id, message->queue_id, sizeof(run.stage->queue_id));
    }
    for (size_t i = 0; i < message->mailbox_count && rc == 0; i++) {
        rc = run_mailbox(&run, i);
    }
    enum sieve_stage_next next = SIEVE_STAGE_SUBMIT;
    if (rc != 0) {
        log_error("%s: sieve: %s", message->queue_id, strerror(-rc));
        next = SIEVE_STAGE_DEFER;
    } else if (run.rejected_count == message->mailbox_count && message->remote_count == 0) {
        /* Every recipient refused it: the client hears so, nothing is
         * stored (RFC 5429 2.1, at the protocol level). */
        refusal_reply(run.reason, reply, reply_bytes);
        next = SIEVE_STAGE_REFUSE;
    } else {
        rc = rejections_send(&run);
        if (rc != 0) {
            next = SIEVE_STAGE_DEFER;
        } else if (run.stage->address_count > 0) {
            next = SIEVE_STAGE_RESOLVE;
        }
    }
    free(read.bytes);
    free(run.is_plain);
    free(run.rejections);
    if (next == SIEVE_STAGE_SUBMIT) {
        sieve_stage_attach(&run.stage, message);
        if (run.stage != NULL) { /* no memory for the hook: deliver all the same */
            sieve_stage_release(&run.stage);
        }
    } else {
        *stage_out = run.stage;
    }
    return next;
}

int
sieve_stage_resolve(struct sieve_stage *stage, struct delivery_message *message,
                    const struct recipients *table)
{
    static __thread const char *mailboxes[ALIAS_EXPANSION_MAX];
    static __thread const char *remotes[ALIAS_EXPANSION_MAX];
    int rc = delivery_message_placements_begin(message);
    for (size_t i = 0; i < stage->address_count && rc == 0; i++) {
        const struct stage_address *entry = &stage->addresses[i];
        const char *address = stage->text + entry->address_offset;
        const char *user = stage->text + entry->user_offset;
        struct recipients_result result = {
            .mailboxes = mailboxes,
            .mailbox_capacity = ALIAS_EXPANSION_MAX,
            .remotes = remotes,
            .remote_capacity = ALIAS_EXPANSION_MAX,
        };
        enum recipients_status status =
            recipients_resolve(table, span_make(address, strlen(address)), &result);
        if (status == RECIPIENTS_OK) {
            for (size_t m = 0; m < result.mailbox_count && rc == 0; m++) {
                rc = delivery_message_place(message, mailboxes[m], "", 0, 0, entry->content);
            }
            for (size_t r = 0; r < result.remote_count && rc == 0; r++) {
                rc = entry->content < 0
                         ? delivery_message_add_remote(message, remotes[r], "", 0)
                         : delivery_message_add_outbound(message, entry->content, remotes[r]);
            }
        } else if (status == RECIPIENTS_NOT_LOCAL) {
            rc = entry->content < 0 ? delivery_message_add_remote(message, address, "", 0)
                                    : delivery_message_add_outbound(message, entry->content,
                                                                    address);
        } else if (entry->content < 0) {
            /* A redirect nobody can take: the user keeps the message. */
            log_warning("%s: sieve: %s: cannot redirect to <%s> (%s); kept in INBOX",
                        message->queue_id, user, address,
                        status == RECIPIENTS_UNKNOWN_USER ? "no such user" : "refused");
            rc = delivery_message_place(message, user, "", 0, 0, -1);
        } else {
            log_warning("%s: sieve: %s: no reply to <%s>: %s", message->queue_id, user, address,
                        status == RECIPIENTS_UNKNOWN_USER ? "no such user" : "refused");
        }
    }
    if (rc != 0) {
        log_error("%s: sieve: cannot place the redirected or generated copies: %s",
                  message->queue_id, strerror(-rc));
    }
    return rc;
}

/* The committer's hook: the message is durable (or failed). */
static void
stage_committed(struct delivery_message *message, void *arg)
{
    struct sieve_stage *stage = arg;
    if (message->result == 0) {
        for (size_t i = 0; i < stage->commit_count; i++) {
            sieve_exec_commit(stage_config.exec, stage->commits[i]);
        }
        for (size_t i = 0; i < stage->log_count; i++) {
            log_info("%s", stage->text + stage->log_offsets[i]);
        }
    }
    sieve_stage_release(&stage);
}

void
sieve_stage_attach(struct sieve_stage **stage_ptr, struct delivery_message *message)
{
    struct sieve_stage *stage = *stage_ptr;
    if (stage == NULL) {
        return;
    }
    if (stage->commit_count == 0 && stage->log_count == 0) {
        sieve_stage_release(stage_ptr);
        return;
    }
    if (delivery_message_on_commit(message, stage_committed, stage) == 0) {
        *stage_ptr = NULL;
    }
}

void
sieve_stage_release(struct sieve_stage **stage_ptr)
{
    struct sieve_stage *stage = *stage_ptr;
    if (stage == NULL) {
        return;
    }
    for (size_t i = 0; i < stage->commit_count; i++) {
        sieve_actions_free(stage->commits[i]);
        free(stage->commits[i]);
    }
    free(stage->commits);
    free(stage->addresses);
    free(stage->log_offsets);
    free(stage->text);
    free(stage);
    *stage_ptr = NULL;
}
