/*
 * core/toasterctl_queue.c - `toasterctl queue` (see toasterctl_queue.h).
 *
 * Reads <data_dir>/queue through store/queue (never by hand), so the
 * format and its checks live in one place. Looking (list, show) takes no
 * lock: an envelope is replaced by rename, so each one read is whole.
 * Changing (hold, release, delete, flush) goes through queue_entry_edit,
 * under the entry's lock. "ALL" first collects the ids, sorted (ids grow
 * with time, so that is arrival order), then edits them one by one: an
 * entry that is gone by then was delivered or deleted meanwhile and is
 * skipped. The only daemon contact is flush's "queue-flush" request.
 * Limits: QUEUE_SCAN_MAX names per listing (store/queue.h),
 * QUEUE_SHOW_HEADER_BYTES_MAX of header shown.
 */
#define _GNU_SOURCE
#include "core/toasterctl_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/control.h"
#include "store/queue.h"

#define QUEUE_CTL_TIMEOUT_MS 5000
/* As the header block bound of the SMTP server (STYLE.md section 4). */
#define QUEUE_SHOW_HEADER_BYTES_MAX (256u * 1024u)
#define QUEUE_CTL_INDENT 48 /* columns before the sender in `list` */

static_assert(CONTROL_QUEUE_ID_LEN + 1 == SPOOL_QUEUE_ID_BYTES, "the same queue ids");

struct id_list {
    char  (*ids)[SPOOL_QUEUE_ID_BYTES];
    size_t count;
    size_t capacity;
};

static const char usage_text[] =
    "usage: toasterctl queue list [--json]\n"
    "       toasterctl queue show ID\n"
    "       toasterctl queue hold [--reason TEXT] ID...|ALL\n"
    "       toasterctl queue release ID...|ALL\n"
    "       toasterctl queue delete ID...|ALL\n"
    "       toasterctl queue flush [--socket PATH] [ID...]\n";

static int
usage_fail(void)
{
    (void)fputs(usage_text, stderr);
    return 2;
}

/* ---- collecting ids ------------------------------------------------------------ */

static int
id_collect(void *ctx, const char *id)
{
    struct id_list *list = ctx;
    if (list->count == list->capacity) {
        size_t want = list->capacity == 0 ? 64 : list->capacity * 2;
        void *grown = realloc(list->ids, want * sizeof(*list->ids));
        if (grown == NULL) {
            return -ENOMEM;
        }
        list->ids = grown;
        list->capacity = want;
    }
    memcpy(list->ids[list->count++], id, SPOOL_QUEUE_ID_BYTES);
    return 0;
}

static int
id_compare(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Every entry's id, sorted. Returns 0 or -errno (said on stderr). */
static int
ids_all(struct queue *queue, struct id_list *list)
{
    int rc = queue_scan(queue, false, id_collect, list);
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: reading the queue directory: %s\n", strerror(-rc));
        return rc;
    }
    if (list->count > 1) {
        qsort(list->ids, list->count, sizeof(*list->ids), id_compare);
    }
    return 0;
}

/* ---- output helpers ------------------------------------------------------------ */

static void
time_text(int64_t when, char *out, size_t out_bytes)
{
    time_t t = (time_t)when;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL || strftime(out, out_bytes, "%a %b %e %H:%M:%S", &tm) == 0) {
        (void)snprintf(out, out_bytes, "%" PRId64, when);
    }
}

/* A JSON string: quotes, backslashes and control bytes escaped; other
 * bytes as they are (addresses may be UTF-8, RFC 6531). */
static void
json_string(FILE *out, const char *text)
{
    (void)fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            (void)fprintf(out, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            (void)fprintf(out, "\\u%04x", *p);
        } else {
            (void)fputc(*p, out);
        }
    }
    (void)fputc('"', out);
}

/* The envelope's word for a state ("?" for a value out of the enum). */
static const char *
state_word(enum queue_rcpt_state state)
{
    const char *name = queue_rcpt_state_name(state);
    return name != NULL ? name : "?";
}

/* ---- list ------------------------------------------------------------ */

static void
list_entry_text(const struct queue_entry *entry)
{
    char arrival[64];
    time_text(entry->arrival, arrival, sizeof(arrival));
    printf("%-16s%c %8" PRIu64 " %-20.20s %s\n", entry->id, entry->is_held ? '!' : ' ',
           entry->size, arrival, entry->mail_from[0] != '\0' ? entry->mail_from : "MAILER-DAEMON");
    if (entry->is_held && entry->hold_reason[0] != '\0') {
        printf("%*s(held: %s)\n", QUEUE_CTL_INDENT, "", entry->hold_reason);
    }
    for (size_t i = 0; i < entry->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &entry->rcpts[i];
        if (rcpt->state != QUEUE_RCPT_PENDING) {
            continue;
        }
        if (rcpt->last_reply[0] != '\0') {
            printf("%*s(%s)\n", QUEUE_CTL_INDENT, "", rcpt->last_reply);
        }
        printf("%*s%s\n", QUEUE_CTL_INDENT, "", rcpt->address);
    }
    printf("\n");
}

/* One JSON object per line, as `postqueue -j` prints. */
static void
list_entry_json(const struct queue_entry *entry)
{
    printf("{\"queue_id\":\"%s\",\"arrival_time\":%" PRId64 ",\"message_size\":%" PRIu64
           ",\"sender\":",
           entry->id, entry->arrival, entry->size);
    json_string(stdout, entry->mail_from);
    printf(",\"held\":%s", entry->is_held ? "true" : "false");
    if (entry->is_held) {
        printf(",\"hold_since\":%" PRId64 ",\"hold_reason\":", entry->held_since);
        json_string(stdout, entry->hold_reason);
    }
    printf(",\"recipients\":[");
    for (size_t i = 0; i < entry->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &entry->rcpts[i];
        printf("%s{\"address\":", i > 0 ? "," : "");
        json_string(stdout, rcpt->address);
        printf(",\"state\":\"%s\",\"attempts\":%" PRIu32 ",\"next_attempt\":%" PRId64
               ",\"delay_reason\":",
               state_word(rcpt->state), rcpt->attempts, rcpt->next_attempt);
        json_string(stdout, rcpt->last_reply);
        printf("}");
    }
    printf("]}\n");
}

static int
queue_list(struct queue *queue, bool is_json)
{
    struct id_list list = { 0 };
    int rc = ids_all(queue, &list);
    if (rc != 0) {
        free(list.ids);
        return 1;
    }
    uint64_t bytes = 0;
    size_t shown = 0;
    size_t broken = 0;
    for (size_t i = 0; i < list.count; i++) {
        struct queue_entry entry;
        char err[QUEUE_ERROR_BYTES];
        rc = queue_entry_load(queue, list.ids[i], &entry, err, sizeof(err));
        if (rc == -ENOENT) {
            continue; /* delivered or deleted since the scan */
        }
        if (rc != 0) {
            (void)fprintf(stderr, "toasterctl: %s\n", err);
            broken++;
            continue;
        }
        if (shown == 0 && !is_json) {
            printf("%-16s  %8s %-20s %s\n", "-Queue ID-------", "--Size--",
                   "----Arrival Time----", "-Sender/Recipient-------");
        }
        if (is_json) {
            list_entry_json(&entry);
        } else {
            list_entry_text(&entry);
        }
        bytes += entry.size;
        shown++;
        queue_entry_release(&entry);
    }
    free(list.ids);
    if (!is_json) {
        if (shown == 0) {
            printf("Mail queue is empty\n");
        } else {
            /* Kbytes rounded up, so a small queue never shows 0. */
            printf("-- %" PRIu64 " Kbytes in %zu Request%s.\n", (bytes + 1023) / 1024, shown,
                   shown == 1 ? "" : "s");
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return broken > 0 ? 1 : 0;
}

/* ---- show ------------------------------------------------------------ */

/* The message's header block (up to the empty line), CRLF shown as LF and
 * other control bytes but TAB as '?', so a hostile header cannot drive
 * the terminal. */
static int
show_header(struct queue *queue, const char *id)
{
    char name[SPOOL_QUEUE_ID_BYTES + 8];
    (void)snprintf(name, sizeof(name), "%s.msg", id);
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int rc = -errno;
        (void)fprintf(stderr, "toasterctl: queue/%s: %s\n", name, strerror(-rc));
        return rc;
    }
    char *bytes = malloc(QUEUE_SHOW_HEADER_BYTES_MAX);
    if (bytes == NULL) {
        (void)close(fd); /* read-only */
        return -ENOMEM;
    }
    size_t len = 0;
    int rc = 0;
    /* Each read adds a byte or ends the loop: bounded by the buffer. */
    while (len < QUEUE_SHOW_HEADER_BYTES_MAX) {
        ssize_t n = read(fd, bytes + len, QUEUE_SHOW_HEADER_BYTES_MAX - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd); /* read-only */
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: queue/%s: %s\n", name, strerror(-rc));
        free(bytes);
        return rc;
    }
    bool is_ended = false;
    size_t line_start = 0;
    for (size_t i = 0; i < len && !is_ended; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (c == '\n') {
            bool is_empty_line = i == line_start || (i == line_start + 1 && bytes[i - 1] == '\r');
            if (is_empty_line) {
                is_ended = true;
                break;
            }
            (void)putchar('\n');
            line_start = i + 1;
        } else if (c == '\r' && i + 1 < len && bytes[i + 1] == '\n') {
            continue;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            (void)putchar('?');
        } else {
            (void)putchar(c);
        }
    }
    if (!is_ended && len == QUEUE_SHOW_HEADER_BYTES_MAX) {
        printf("\n[header longer than %u bytes: cut]\n", QUEUE_SHOW_HEADER_BYTES_MAX);
    }
    free(bytes);
    return 0;
}

static int
queue_show(struct queue *queue, const char *id)
{
    struct queue_entry entry;
    char err[QUEUE_ERROR_BYTES];
    int rc = queue_entry_load(queue, id, &entry, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n",
                      rc == -ENOENT ? "no such queue entry" : err);
        return 1;
    }
    char when[64];
    time_text(entry.arrival, when, sizeof(when));
    printf("id:        %s\n", entry.id);
    printf("arrival:   %" PRId64 " (%s)\n", entry.arrival, when);
    printf("size:      %" PRIu64 "\n", entry.size);
    printf("sender:    <%s>\n", entry.mail_from);
    printf("ret:       %s\n", entry.ret == QUEUE_RET_FULL   ? "full"
                              : entry.ret == QUEUE_RET_HDRS ? "hdrs"
                                                            : "-");
    printf("envid:     %s\n", entry.envid[0] != '\0' ? entry.envid : "-");
    printf("user:      %s\n", entry.user[0] != '\0' ? entry.user : "-");
    if (entry.is_held) {
        time_text(entry.held_since, when, sizeof(when));
        printf("held:      since %" PRId64 " (%s)%s%s\n", entry.held_since, when,
               entry.hold_reason[0] != '\0' ? ": " : "", entry.hold_reason);
    } else {
        printf("held:      no\n");
    }
    if (entry.warned_at != 0) {
        time_text(entry.warned_at, when, sizeof(when));
        printf("warned:    %" PRId64 " (%s)\n", entry.warned_at, when);
    } else {
        printf("warned:    no\n");
    }
    for (size_t i = 0; i < entry.rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &entry.rcpts[i];
        char next[80];
        if (rcpt->next_attempt == 0) {
            (void)snprintf(next, sizeof(next), "at once");
        } else {
            time_text(rcpt->next_attempt, when, sizeof(when));
            (void)snprintf(next, sizeof(next), "%" PRId64 " (%s)", rcpt->next_attempt, when);
        }
        printf("recipient: <%s> %s, %" PRIu32 " attempt%s", rcpt->address,
               state_word(rcpt->state), rcpt->attempts, rcpt->attempts == 1 ? "" : "s");
        if (rcpt->state == QUEUE_RCPT_PENDING) {
            printf(", next %s", next);
        }
        printf("\n");
        if (rcpt->orcpt[0] != '\0') {
            printf("           orcpt %s\n", rcpt->orcpt);
        }
        if (rcpt->notify != 0) {
            printf("           notify%s%s%s%s\n",
                   rcpt->notify & QUEUE_NOTIFY_NEVER ? " NEVER" : "",
                   rcpt->notify & QUEUE_NOTIFY_SUCCESS ? " SUCCESS" : "",
                   rcpt->notify & QUEUE_NOTIFY_FAILURE ? " FAILURE" : "",
                   rcpt->notify & QUEUE_NOTIFY_DELAY ? " DELAY" : "");
        }
        if (rcpt->last_reply[0] != '\0') {
            printf("           last reply: %s\n", rcpt->last_reply);
        }
    }
    queue_entry_release(&entry);
    printf("\n");
    rc = show_header(queue, id);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return rc == 0 ? 0 : 1;
}

/* ---- hold, release, delete, flush ----------------------------------------- */

static const char *
edit_done_word(enum queue_edit edit)
{
    switch (edit) {
    case QUEUE_EDIT_HOLD:
        return "held";
    case QUEUE_EDIT_RELEASE:
        return "released";
    case QUEUE_EDIT_FLUSH:
        return "due at once";
    case QUEUE_EDIT_DELETE:
        return "deleted";
    }
    return "?";
}

static const char *
edit_already_word(enum queue_edit edit)
{
    switch (edit) {
    case QUEUE_EDIT_HOLD:
        return "held already";
    case QUEUE_EDIT_RELEASE:
        return "not held";
    case QUEUE_EDIT_FLUSH:
        return "nothing pending to hurry";
    case QUEUE_EDIT_DELETE:
        break;
    }
    return "?";
}

/* Edit the named entries (ids) or every entry (ids == NULL). Prints one
 * line per entry and a count. Returns the exit code. */
static int
queue_edit_many(struct queue *queue, enum queue_edit edit, const char *reason, char **ids,
                size_t id_count)
{
    struct id_list all = { 0 };
    bool is_all = ids == NULL;
    if (is_all && ids_all(queue, &all) != 0) {
        free(all.ids);
        return 1;
    }
    size_t count = is_all ? all.count : id_count;
    int64_t now = (int64_t)time(NULL);
    size_t changed = 0;
    size_t failed = 0;
    for (size_t i = 0; i < count; i++) {
        const char *id = is_all ? all.ids[i] : ids[i];
        char err[QUEUE_ERROR_BYTES];
        int rc = queue_entry_edit(queue, id, edit, now, reason, err, sizeof(err));
        if (rc == 0) {
            printf("%s: %s\n", id, edit_done_word(edit));
            changed++;
        } else if (rc == 1) {
            printf("%s: %s\n", id, edit_already_word(edit));
        } else if (rc == -ENOENT && is_all) {
            continue; /* gone since the scan */
        } else {
            (void)fprintf(stderr, "toasterctl: %s\n", err[0] != '\0' ? err : strerror(-rc));
            failed++;
        }
    }
    free(all.ids);
    printf("%s: %zu entr%s\n", edit_done_word(edit), changed, changed == 1 ? "y" : "ies");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return failed > 0 ? 1 : 0;
}

/* Tell a running daemon that entries are due now. No daemon is fine: the
 * entries are due on disk, and a starting daemon reads them. */
static int
flush_tell_daemon(const char *socket_path, char **ids, size_t id_count)
{
    int code = 0;
    size_t requests = id_count == 0 ? 1 : id_count;
    for (size_t i = 0; i < requests; i++) {
        char request[64];
        if (id_count == 0) {
            (void)snprintf(request, sizeof(request), "queue-flush");
        } else {
            (void)snprintf(request, sizeof(request), "queue-flush %s", ids[i]);
        }
        char answer[512];
        int len = control_request(socket_path, request, answer, sizeof(answer),
                                  QUEUE_CTL_TIMEOUT_MS);
        if (len == -ENOENT || len == -ECONNREFUSED) {
            printf("no daemon at %s: the entries are due at its next start\n", socket_path);
            return code;
        }
        if (len < 0) {
            (void)fprintf(stderr, "toasterctl: %s: %s\n", socket_path, strerror(-len));
            return 1;
        }
        if (strstr(answer, "\"result\":\"ok\"") == NULL) {
            (void)fprintf(stderr, "toasterctl: the daemon answered %s", answer);
            code = 1;
            continue;
        }
        if (i == 0 && strstr(answer, "\"delivery_agent\":false") != NULL) {
            printf("the daemon was told; it has no delivery agent yet, so nothing is sent "
                   "now\n");
        }
    }
    return code;
}

/* ---- dispatch ------------------------------------------------------------ */

int
toasterctl_queue(const struct config *config, int argc, char **argv)
{
    if (argc < 1) {
        return usage_fail();
    }
    const char *verb = argv[0];
    bool is_json = false;
    const char *reason = NULL;
    const char *socket_path = config->control_socket_path;
    /* Options first, then ids (or ALL). */
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(verb, "list") == 0 && strcmp(argv[i], "--json") == 0) {
            is_json = true;
        } else if (strcmp(verb, "hold") == 0 && strcmp(argv[i], "--reason") == 0 &&
                   i + 1 < argc) {
            reason = argv[++i];
        } else if (strcmp(verb, "flush") == 0 && strcmp(argv[i], "--socket") == 0 &&
                   i + 1 < argc) {
            socket_path = argv[++i];
        } else {
            return usage_fail();
        }
    }
    char **ids = argv + i;
    size_t id_count = (size_t)(argc - i);
    bool is_all = id_count == 1 && strcmp(ids[0], "ALL") == 0;
    for (size_t k = 0; k < id_count && !is_all; k++) {
        if (!queue_id_is_valid(ids[k])) {
            (void)fprintf(stderr, "toasterctl: %.64s: not a queue id (16 hex digits, upper case)\n",
                          ids[k]);
            return 2;
        }
    }
    enum queue_edit edit = QUEUE_EDIT_FLUSH; /* set below for each editing verb */
    if (strcmp(verb, "list") == 0) {
        if (id_count != 0) {
            return usage_fail();
        }
    } else if (strcmp(verb, "show") == 0) {
        if (id_count != 1 || is_all) {
            return usage_fail();
        }
    } else if (strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0 ||
               strcmp(verb, "delete") == 0) {
        if (id_count == 0) {
            return usage_fail();
        }
        edit = verb[0] == 'h' ? QUEUE_EDIT_HOLD
               : verb[0] == 'r' ? QUEUE_EDIT_RELEASE
                                : QUEUE_EDIT_DELETE;
    } else if (strcmp(verb, "flush") == 0) {
        if (is_all) {
            return usage_fail(); /* no ids means every entry */
        }
        edit = QUEUE_EDIT_FLUSH;
    } else {
        return usage_fail();
    }

    /* No queue directory yet: nothing was ever queued. Not made here, so
     * looking never creates anything. */
    char path[CONFIG_STRING_BYTES + 16];
    struct stat st;
    if ((size_t)snprintf(path, sizeof(path), "%s/queue", config->data_dir) >= sizeof(path)) {
        (void)fprintf(stderr, "toasterctl: %s/queue: path too long\n", config->data_dir);
        return 1;
    }
    if (stat(path, &st) != 0 && errno == ENOENT) {
        if (strcmp(verb, "list") == 0) {
            if (!is_json) {
                printf("Mail queue is empty\n");
            }
            return 0;
        }
        if (is_all || (strcmp(verb, "flush") == 0 && id_count == 0)) {
            printf("the queue is empty\n");
            return 0;
        }
        (void)fprintf(stderr, "toasterctl: %s: no such queue entry\n", ids[0]);
        return 1;
    }
    struct queue *queue = NULL;
    int rc = queue_open(config->data_dir, config->fsync, &queue);
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", path, strerror(-rc));
        return 1;
    }
    int code;
    if (strcmp(verb, "list") == 0) {
        code = queue_list(queue, is_json);
    } else if (strcmp(verb, "show") == 0) {
        code = queue_show(queue, ids[0]);
    } else if (strcmp(verb, "flush") == 0) {
        code = queue_edit_many(queue, edit, NULL, id_count == 0 ? NULL : ids, id_count);
        int told = flush_tell_daemon(socket_path, ids, id_count);
        code = code != 0 ? code : told;
    } else {
        code = queue_edit_many(queue, edit, reason, is_all ? NULL : ids, id_count);
    }
    queue_close(&queue);
    return code;
}
