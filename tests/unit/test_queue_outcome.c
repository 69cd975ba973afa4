/*
 * tests/unit/test_queue_outcome.c - one delivery attempt's outcomes
 * applied to a queue entry (store/queue_outcome), on real files in a
 * temporary directory with a fixed clock: every kind; partial success (an
 * update with the next attempt); all delivered (removed); a 5xx bounced
 * (the bounce entry taken apart: null sender, one recipient = the sender,
 * multipart/report with the recipient's Final-Recipient, Status and
 * Diagnostic-Code, the original without its Return-Path line); no DSN to
 * the null sender or against NOTIFY; the lifetime's end (failed, a 4.4.7
 * bounce, recipients not tried included); the delay warning once and its
 * "warned" line; success reports; a crash between the DSN and the
 * envelope update (nothing lost, a second bounce); bad outcomes refused
 * with nothing changed; replies cleaned and cut; the entry owning its
 * strings afterwards; no write when nothing changed; an over-long original
 * returned as headers; a UTF-8 sender; an unreadable original; a DSN that
 * cannot be composed skipped without holding up the envelope.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/dsn.h"
#include "store/queue_outcome.h"
#include "tests/unit/unit.h"

int main(void);

#define ARRIVAL 1733900000
#define NOW (ARRIVAL + 600)
#define SENDER "alice@example.com"

static char data_dir[256];

static const char message_text[] = "Return-Path: <alice@example.com>\r\n"
                                   "From: Alice <alice@example.com>\r\n"
                                   "To: bob@remote.test\r\n"
                                   "Subject: lunch\r\n"
                                   "Message-ID: <m1@example.com>\r\n"
                                   "\r\n"
                                   "the body of the original\r\n";

/* ---- helpers ------------------------------------------------------------- */

static struct queue *
queue_make(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    return queue;
}

/* Store an entry with these recipients and message (a named source file). */
static void
store(struct queue *queue, const char *id, const char *sender, int64_t arrival,
      struct queue_rcpt *rcpts, size_t count, const char *message)
{
    int dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY);
    CHECK(dir_fd >= 0);
    (void)unlinkat(dir_fd, "src", 0);
    int fd = openat(dir_fd, "src", O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    size_t len = strlen(message);
    CHECK(write(fd, message, len) == (ssize_t)len);
    struct queue_source source = {.fd = fd, .is_unnamed = false, .dir_fd = dir_fd, .name = "src"};
    struct queue_entry entry;
    memset(&entry, 0, sizeof(entry));
    (void)snprintf(entry.id, sizeof(entry.id), "%s", id);
    entry.arrival = arrival;
    entry.size = len;
    (void)snprintf(entry.mail_from, sizeof(entry.mail_from), "%s", sender);
    entry.rcpts = rcpts;
    entry.rcpt_count = count;
    for (size_t i = 0; i < count; i++) {
        if (rcpts[i].orcpt == NULL) {
            rcpts[i].orcpt = "";
        }
    }
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    (void)unlinkat(dir_fd, "src", 0);
    (void)close(fd);
    (void)close(dir_fd);
}

static int
load(struct queue *queue, const char *id, struct queue_entry *entry)
{
    char err[256];
    int rc = queue_entry_load(queue, id, entry, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "load %s: %d %s\n", id, rc, err);
    }
    return rc;
}

/* A whole file of the queue directory, NUL-terminated; NULL when absent. */
static char *
file_text(struct queue *queue, const char *name, size_t *len_out)
{
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY);
    if (fd < 0) {
        return NULL;
    }
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    char *text = malloc((size_t)st.st_size + 1);
    CHECK(text != NULL);
    CHECK(read(fd, text, (size_t)st.st_size) == st.st_size);
    text[st.st_size] = '\0';
    (void)close(fd);
    if (len_out != NULL) {
        *len_out = (size_t)st.st_size;
    }
    return text;
}

static char *
env_text(struct queue *queue, const char *id)
{
    char name[64];
    (void)snprintf(name, sizeof(name), "%s.env", id);
    return file_text(queue, name, NULL);
}

static int
count_visit(void *ctx, const char *id)
{
    (void)id;
    (*(int *)ctx)++;
    return 0;
}

static int
entry_count(struct queue *queue)
{
    int count = 0;
    CHECK(queue_scan(queue, false, count_visit, &count) == 0);
    return count;
}

static bool
exists(struct queue *queue, const char *id, const char *suffix)
{
    char name[64];
    (void)snprintf(name, sizeof(name), "%s%s", id, suffix);
    return faccessat(queue_dir_fd(queue), name, F_OK, 0) == 0;
}

static struct queue_schedule_policy policy;

static struct queue_outcome_params
params_at(int64_t now)
{
    return (struct queue_outcome_params){.policy = &policy,
                                         .hostname = "mail.example.com",
                                         .now = now,
                                         .random = 0x1234567887654321u};
}

/* A DSN entry taken apart. */
struct dsn_parsed {
    char *text; /* the whole .msg */
    size_t len;
    const char *head; /* the DSN's header block, after the Return-Path line */
    size_t head_len;
    const char *part[3];
    size_t part_len[3];
    size_t part_count;
    bool is_closed;
};

/* Load a generated entry: the null sender, one recipient (the sender),
 * NOTIFY 0, arrival when it was made; its message starts with "Return-Path: <>" and is a
 * multipart/report of three parts. */
static bool
dsn_parse(struct queue *queue, const char *id, const char *sender, int64_t arrival,
          struct dsn_parsed *p)
{
    memset(p, 0, sizeof(*p));
    struct queue_entry entry;
    if (load(queue, id, &entry) != 0) {
        return false;
    }
    bool is_ok = entry.mail_from[0] == '\0' && entry.rcpt_count == 1 &&
                 strcmp(entry.rcpts[0].address, sender) == 0 && entry.rcpts[0].notify == 0 &&
                 entry.rcpts[0].state == QUEUE_RCPT_PENDING && entry.rcpts[0].attempts == 0 &&
                 entry.arrival == arrival && entry.warned_at == 0 && !entry.is_held;
    queue_entry_release(&entry);
    if (!is_ok) {
        fprintf(stderr, "dsn %s: envelope not as expected\n", id);
        return false;
    }
    char name[64];
    (void)snprintf(name, sizeof(name), "%s.msg", id);
    p->text = file_text(queue, name, &p->len);
    if (p->text == NULL || strncmp(p->text, "Return-Path: <>\r\n", 17) != 0) {
        return false;
    }
    p->head = p->text + 17;
    const char *end = strstr(p->head, "\r\n\r\n");
    if (end == NULL) {
        return false;
    }
    p->head_len = (size_t)(end - p->head) + 2;
    static const char ct_line[] = "\r\nContent-Type: multipart/report; "
                                  "report-type=delivery-status;\r\n boundary=\"";
    const char *ct = memmem(p->head, p->head_len, ct_line, sizeof(ct_line) - 1);
    if (ct == NULL) {
        return false;
    }
    const char *b = ct + sizeof(ct_line) - 1;
    const char *q = strchr(b, '"');
    if (q == NULL || q - b > 60) {
        return false;
    }
    char delim[80];
    int n = snprintf(delim, sizeof(delim), "\r\n--%.*s", (int)(q - b), b);
    const char *stop = p->text + p->len;
    const char *pos = end;
    const char *prev = NULL;
    while (pos < stop) {
        const char *d = memmem(pos, (size_t)(stop - pos), delim, (size_t)n);
        if (d == NULL) {
            break;
        }
        if (prev != NULL && p->part_count < 3) {
            p->part[p->part_count] = prev;
            p->part_len[p->part_count] = (size_t)(d - prev);
            p->part_count++;
        }
        const char *after = d + n;
        if (after + 4 <= stop && memcmp(after, "--\r\n", 4) == 0) {
            p->is_closed = after + 4 == stop;
            break;
        }
        if (after + 2 > stop || memcmp(after, "\r\n", 2) != 0) {
            return false;
        }
        prev = after + 2;
        pos = prev;
    }
    return p->part_count == 3 && p->is_closed;
}

static void
dsn_free(struct dsn_parsed *p)
{
    free(p->text);
    memset(p, 0, sizeof(*p));
}

/* Whether a whole line (CRLF) is in the text. */
static bool
has_line(const char *text, size_t len, const char *line)
{
    char want[1200];
    int n = snprintf(want, sizeof(want), "\n%s\r\n", line);
    if (n <= 0 || (size_t)n >= sizeof(want)) {
        return false;
    }
    if (len >= (size_t)n - 1 && memcmp(text, want + 1, (size_t)n - 1) == 0) {
        return true;
    }
    return memmem(text, len, want, (size_t)n) != NULL;
}

static size_t
occurrences(const char *text, size_t len, const char *what)
{
    size_t count = 0;
    size_t n = strlen(what);
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), what, n)) != NULL; p += n) {
        count++;
    }
    return count;
}

/* ---- tests --------------------------------------------------------------- */

/* 2 of 3 delivered, 1 deferred: updated, the deferred one's next attempt
 * is the retry back-off (with jitter) after now; the entry owns the
 * replies after the call. */
static void
test_partial(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000A1";
    struct queue_rcpt rcpts[3] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test"},
        {.address = "dave@far.test", .attempts = 2, .next_attempt = NOW - 5, .last_reply = "old"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 3, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    char *reply = strdup("250 2.0.0 Ok: queued as 4Xyz");
    CHECK(reply != NULL);
    struct queue_outcome outcomes[3] = {
        {.rcpt_index = 1,
         .kind = QUEUE_OUTCOME_DELIVERED,
         .reply = reply,
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 0,
         .kind = QUEUE_OUTCOME_DELIVERED,
         .reply = reply,
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 2,
         .kind = QUEUE_OUTCOME_DEFERRED,
         .reply = "451 4.4.1 connect to 192.0.2.1[192.0.2.1]:25: Connection refused",
         .remote_mta = NULL},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 3, &params, &result) == 0);
    memset(reply, 'x', strlen(reply)); /* the caller's string is gone */
    free(reply);
    CHECK(!result.is_removed);
    CHECK(result.pending_count == 1);
    CHECK(result.generated_count == 0);
    /* Third attempt: 300 s doubled twice = 1200 s, jitter up to 1/16. */
    CHECK(result.next_attempt >= NOW + 1200 - 75 && result.next_attempt <= NOW + 1200 + 75);
    /* In memory. */
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[2].state == QUEUE_RCPT_PENDING);
    CHECK(entry.rcpts[0].attempts == 1);
    CHECK(entry.rcpts[2].attempts == 3);
    CHECK(entry.rcpts[2].next_attempt == result.next_attempt);
    CHECK_STR(entry.rcpts[0].last_reply, "250 2.0.0 Ok: queued as 4Xyz");
    CHECK_STR(entry.rcpts[1].last_reply, "250 2.0.0 Ok: queued as 4Xyz");
    CHECK_STR(entry.rcpts[2].address, "dave@far.test");
    CHECK(entry.warned_at == 0);
    queue_entry_release(&entry);
    /* On disk. */
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[2].state == QUEUE_RCPT_PENDING);
    CHECK(entry.rcpts[2].attempts == 3);
    CHECK(entry.rcpts[2].next_attempt == result.next_attempt);
    CHECK_STR(entry.rcpts[2].last_reply,
              "451 4.4.1 connect to 192.0.2.1[192.0.2.1]:25: Connection refused");
    CHECK_STR(entry.rcpts[0].last_reply, "250 2.0.0 Ok: queued as 4Xyz");
    /* The last one delivered next time: the entry goes. */
    struct queue_outcome last = {.rcpt_index = 2,
                                 .kind = QUEUE_OUTCOME_DELIVERED,
                                 .reply = "250 ok",
                                 .remote_mta = "mx.far.test"};
    params = params_at(NOW + 1300);
    CHECK(queue_outcome_apply(queue, &entry, &last, 1, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.pending_count == 0);
    CHECK(result.next_attempt == 0);
    CHECK(entry.rcpts[2].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[2].attempts == 4);
    queue_entry_release(&entry);
    CHECK(!exists(queue, id, ".env"));
    CHECK(!exists(queue, id, ".msg"));
    CHECK(entry_count(queue) == 0);
    queue_close(&queue);
}

/* Every recipient delivered at once (DELIVERED and RELAYED without
 * SUCCESS): removed, no DSN. Recipients not tried stay as they were. */
static void
test_all_delivered_and_untried(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000A2";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[2] = {
        {.rcpt_index = 0, .kind = QUEUE_OUTCOME_DELIVERED, .reply = "250 ok"},
        {.rcpt_index = 1, .kind = QUEUE_OUTCOME_RELAYED, .reply = "250 relayed"},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 0);
    CHECK(entry_count(queue) == 0);
    queue_entry_release(&entry);
    /* An entry found with nothing pending (however it came to be) goes. */
    struct queue_rcpt done = {.address = "bob@remote.test", .state = QUEUE_RCPT_DELIVERED};
    store(queue, "00000000000000A4", SENDER, ARRIVAL, &done, 1, message_text);
    CHECK(load(queue, "00000000000000A4", &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, NULL, 0, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 0);
    CHECK(entry_count(queue) == 0);
    queue_entry_release(&entry);

    /* Untried recipients (another destination busy) are left alone;
     * nothing but the tried one changes, byte for byte. */
    id = "00000000000000A3";
    struct queue_rcpt three[3] = {
        {.address = "bob@remote.test",
         .attempts = 1,
         .next_attempt = NOW + 99,
         .last_reply = "421 busy"},
        {.address = "carol@remote.test"},
        {.address = "erin@else.test",
         .attempts = 4,
         .next_attempt = NOW + 7,
         .last_reply = "452 full"},
    };
    store(queue, id, SENDER, ARRIVAL, three, 3, message_text);
    char *before = env_text(queue, id);
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome one = {
        .rcpt_index = 1, .kind = QUEUE_OUTCOME_DELIVERED, .reply = "250 ok"};
    CHECK(queue_outcome_apply(queue, &entry, &one, 1, &params, &result) == 0);
    CHECK(!result.is_removed);
    CHECK(result.pending_count == 2);
    CHECK(result.next_attempt == NOW + 7);
    queue_entry_release(&entry);
    char *after = env_text(queue, id);
    CHECK(before != NULL && after != NULL);
    if (before != NULL && after != NULL) {
        CHECK(strstr(after, "rcpt pending 1 1733900699 <bob@remote.test> - - 421 busy\n") != NULL);
        CHECK(strstr(after, "rcpt delivered 1 0 <carol@remote.test> - - 250 ok\n") != NULL);
        CHECK(strstr(after, "rcpt pending 4 1733900607 <erin@else.test> - - 452 full\n") != NULL);
        CHECK(strstr(before, "rcpt pending 0 0 <carol@remote.test> - -\n") != NULL);
    }
    free(before);
    free(after);
    /* No outcome and nothing due: nothing is written (an update would
     * trip over the directory in its temporary file's place). */
    CHECK(load(queue, id, &entry) == 0);
    before = env_text(queue, id);
    CHECK(mkdirat(queue_dir_fd(queue), "00000000000000A3.env.tmp", 0700) == 0);
    CHECK(queue_outcome_apply(queue, &entry, NULL, 0, &params, &result) == 0);
    CHECK(!result.is_removed);
    CHECK(result.pending_count == 2);
    CHECK(result.next_attempt == NOW + 7);
    CHECK(result.generated_count == 0);
    after = env_text(queue, id);
    CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000A3.env.tmp", AT_REMOVEDIR) == 0);
    queue_entry_release(&entry);
    free(before);
    free(after);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

/* A 5xx: the recipient fails and one bounce goes to the sender. */
static void
test_bounce(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000B1";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test", .orcpt = "rfc822;bob@remote.test"},
        {.address = "carol@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[2] = {
        {.rcpt_index = 0,
         .kind = QUEUE_OUTCOME_FAILED,
         .reply = "550 5.1.1 <bob@remote.test>: no such user",
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 1,
         .kind = QUEUE_OUTCOME_DEFERRED,
         .reply = "451 4.7.1 greylisted",
         .remote_mta = "mx.remote.test"},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result) == 0);
    CHECK(!result.is_removed);
    CHECK(result.pending_count == 1);
    CHECK(result.generated_count == 1);
    CHECK(entry_count(queue) == 2);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    CHECK(entry.rcpts[0].attempts == 1);
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_PENDING);
    queue_entry_release(&entry);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    CHECK_STR(entry.rcpts[0].last_reply, "550 5.1.1 <bob@remote.test>: no such user");
    queue_entry_release(&entry);

    struct dsn_parsed p;
    CHECK(queue_id_is_valid(result.generated_ids[0]));
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.head, p.head_len, "Subject: Undelivered Mail Returned to Sender"));
        CHECK(has_line(p.head, p.head_len, "To: <alice@example.com>"));
        CHECK(has_line(p.head, p.head_len,
                       "From: Mail Delivery System <MAILER-DAEMON@mail.example.com>"));
        const char *status = p.part[1];
        size_t status_len = p.part_len[1];
        CHECK(has_line(status, status_len, "Content-Type: message/delivery-status"));
        CHECK(has_line(status, status_len, "Reporting-MTA: dns; mail.example.com"));
        CHECK(has_line(status, status_len, "Final-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(status, status_len, "Original-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(status, status_len, "Action: failed"));
        CHECK(has_line(status, status_len, "Status: 5.1.1"));
        CHECK(has_line(status, status_len, "Remote-MTA: dns; mx.remote.test"));
        CHECK(has_line(status, status_len,
                       "Diagnostic-Code: smtp; 550 5.1.1 <bob@remote.test>: no such user"));
        /* The deferred recipient is not in the bounce. */
        CHECK(memmem(status, status_len, "carol", 5) == NULL);
        CHECK(occurrences(status, status_len, "Final-Recipient:") == 1);
        /* The original, whole, without its Return-Path line. */
        const char *orig = p.part[2];
        size_t orig_len = p.part_len[2];
        CHECK(has_line(orig, orig_len, "Content-Type: message/rfc822"));
        CHECK(has_line(orig, orig_len, "Subject: lunch"));
        CHECK(has_line(orig, orig_len, "the body of the original"));
        CHECK(memmem(orig, orig_len, "Return-Path: <alice", 19) == NULL);
        /* The human part names the recipient and the remote's words. */
        CHECK(memmem(p.part[0], p.part_len[0],
                     "<bob@remote.test>: host mx.remote.test said:", 44) != NULL);
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

/* No DSN to the null sender; none against NOTIFY (NEVER, or SUCCESS
 * without FAILURE). The recipients still fail. */
static void
test_no_bounce(void)
{
    struct queue *queue = queue_make();
    struct queue_outcome failed = {.rcpt_index = 0,
                                   .kind = QUEUE_OUTCOME_FAILED,
                                   .reply = "550 5.7.1 go away",
                                   .remote_mta = "mx.x.test"};
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    struct queue_entry entry;

    struct queue_rcpt rcpt = {.address = "bob@remote.test"};
    store(queue, "00000000000000C1", "", ARRIVAL, &rcpt, 1, message_text);
    CHECK(load(queue, "00000000000000C1", &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 0);

    rcpt = (struct queue_rcpt){.address = "bob@remote.test", .notify = QUEUE_NOTIFY_NEVER};
    store(queue, "00000000000000C2", SENDER, ARRIVAL, &rcpt, 1, message_text);
    CHECK(load(queue, "00000000000000C2", &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 0);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 0);

    rcpt = (struct queue_rcpt){.address = "bob@remote.test", .notify = QUEUE_NOTIFY_SUCCESS};
    store(queue, "00000000000000C3", SENDER, ARRIVAL, &rcpt, 1, message_text);
    CHECK(load(queue, "00000000000000C3", &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 0);

    /* NOTIFY=FAILURE does get one. */
    rcpt = (struct queue_rcpt){.address = "bob@remote.test", .notify = QUEUE_NOTIFY_FAILURE};
    store(queue, "00000000000000C4", SENDER, ARRIVAL, &rcpt, 1, message_text);
    CHECK(load(queue, "00000000000000C4", &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.generated_count == 1);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 1);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    queue_close(&queue);
}

/* The lifetime's end: a deferral at or past arrival + lifetime fails the
 * recipient, and so does reaching it untried; one bounce with Status
 * 4.4.7 and the last reply. Just before the end, the next attempt is
 * capped at the end. */
static void
test_expiry(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000D1";
    int64_t now = ARRIVAL + (int64_t)policy.lifetime_s; /* exactly the lifetime: expired */
    struct queue_rcpt rcpts[3] = {
        {.address = "bob@remote.test", .attempts = 30, .last_reply = "451 old"},
        {.address = "carol@remote.test",
         .attempts = 29,
         .next_attempt = now + 100,
         .last_reply = "421 4.3.2 busy"},
        {.address = "dave@remote.test", .notify = QUEUE_NOTIFY_NEVER},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 3, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome deferred = {.rcpt_index = 0,
                                     .kind = QUEUE_OUTCOME_DEFERRED,
                                     .reply = "451 4.7.1 greylisted",
                                     .remote_mta = "mx.remote.test"};
    struct queue_outcome_params params = params_at(now);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, &deferred, 1, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.pending_count == 0);
    CHECK(result.generated_count == 1);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    CHECK(entry.rcpts[0].attempts == 31);
    CHECK_STR(entry.rcpts[0].last_reply, "451 4.7.1 greylisted");
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_FAILED);
    CHECK(entry.rcpts[1].attempts == 29); /* not tried */
    CHECK_STR(entry.rcpts[1].last_reply, "421 4.3.2 busy");
    CHECK(entry.rcpts[2].state == QUEUE_RCPT_FAILED);
    queue_entry_release(&entry);
    CHECK(!exists(queue, id, ".env"));

    struct dsn_parsed p;
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, now, &p));
    if (p.part_count == 3) {
        const char *status = p.part[1];
        size_t status_len = p.part_len[1];
        CHECK(occurrences(status, status_len, "Final-Recipient:") == 2); /* not dave (NEVER) */
        CHECK(has_line(status, status_len, "Final-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(status, status_len, "Final-Recipient: rfc822; carol@remote.test"));
        CHECK(occurrences(status, status_len, "\r\nStatus: 4.4.7\r\n") == 2);
        CHECK(occurrences(status, status_len, "\r\nAction: failed\r\n") == 2);
        CHECK(has_line(status, status_len,
                       "Diagnostic-Code: smtp; 451 4.4.7 Message delivery time exceeded; last "
                       "reply from mx.remote.test: 451 4.7.1 greylisted"));
        CHECK(has_line(status, status_len,
                       "Diagnostic-Code: smtp; 451 4.4.7 Message delivery time exceeded; last "
                       "reply: 421 4.3.2 busy"));
        CHECK(memmem(status, status_len, "Remote-MTA:", 11) == NULL); /* our verdict */
        CHECK(has_line(p.head, p.head_len, "Subject: Undelivered Mail Returned to Sender"));
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);

    /* One second before the end: still pending, next attempt at the end. */
    id = "00000000000000D2";
    struct queue_rcpt one = {.address = "bob@remote.test", .attempts = 30};
    store(queue, id, SENDER, ARRIVAL, &one, 1, message_text);
    CHECK(load(queue, id, &entry) == 0);
    params = params_at(now - 1);
    CHECK(queue_outcome_apply(queue, &entry, &deferred, 1, &params, &result) == 0);
    CHECK(!result.is_removed);
    CHECK(result.generated_count == 1); /* the delay warning, at last */
    CHECK(entry.warned_at == now - 1);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(result.next_attempt == now);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_PENDING);
    /* Then reached untried (an empty outcome list: the agent found it due
     * and the destination down): failed with the bare 4.4.7 text when
     * there was no reply at all. */
    queue_entry_release(&entry);
    id = "00000000000000D3";
    struct queue_rcpt never = {.address = "erin@remote.test"};
    store(queue, id, SENDER, ARRIVAL, &never, 1, message_text);
    CHECK(load(queue, id, &entry) == 0);
    params = params_at(now + 5);
    CHECK(queue_outcome_apply(queue, &entry, NULL, 0, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 1);
    CHECK(entry.rcpts[0].attempts == 0);
    queue_entry_release(&entry);
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, now + 5, &p));
    dsn_free(&p);
    char name[64];
    (void)snprintf(name, sizeof(name), "%s.msg", result.generated_ids[0]);
    char *text = file_text(queue, name, NULL);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(strstr(text, "\r\nDiagnostic-Code: smtp; 451 4.4.7 Message delivery time "
                           "exceeded\r\n") != NULL);
        CHECK(strstr(text, "\r\nStatus: 4.4.7\r\n") != NULL);
    }
    free(text);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(queue_entry_remove(queue, "00000000000000D2") == 0);
    CHECK(entry_count(queue) == 0);
    queue_close(&queue);
}

/* The delay warning: once, for the recipients still pending, when
 * delay_warning_s has passed; the "warned" line then keeps a second one
 * from going, also after a reload. */
static void
test_delay_warning(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000E1";
    struct queue_rcpt rcpts[3] = {
        {.address = "bob@remote.test", .notify = QUEUE_NOTIFY_DELAY | QUEUE_NOTIFY_FAILURE},
        {.address = "carol@remote.test"},
        {.address = "dave@remote.test", .notify = QUEUE_NOTIFY_FAILURE}, /* no DELAY */
    };
    int64_t now = ARRIVAL + (int64_t)policy.delay_warning_s + 30;
    store(queue, id, SENDER, ARRIVAL, rcpts, 3, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[3] = {
        {.rcpt_index = 0,
         .kind = QUEUE_OUTCOME_DEFERRED,
         .reply = "451 4.7.1 greylisted",
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 1, .kind = QUEUE_OUTCOME_DELIVERED, .reply = "250 ok"},
        {.rcpt_index = 2, .kind = QUEUE_OUTCOME_DEFERRED, .reply = "452 4.2.2 full"},
    };
    struct queue_outcome_params params = params_at(now);
    struct queue_outcome_result result;
    /* Before it is due: nothing. */
    params.now = ARRIVAL + (int64_t)policy.delay_warning_s - 1;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    CHECK(entry.warned_at == 0);
    params = params_at(now);
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 3, &params, &result) == 0);
    CHECK(result.generated_count == 1);
    CHECK(result.pending_count == 2);
    CHECK(entry.warned_at == now);
    queue_entry_release(&entry);
    char *text = env_text(queue, id);
    CHECK(text != NULL);
    char want[64];
    (void)snprintf(want, sizeof(want), "\nuser -\nwarned %lld\nrcpt ", (long long)now);
    CHECK(text != NULL && strncmp(text, "toaster-queue 2\n", 16) == 0);
    CHECK(text != NULL && strstr(text, want) != NULL);
    free(text);

    struct dsn_parsed p;
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, now, &p));
    dsn_free(&p);
    char name[64];
    (void)snprintf(name, sizeof(name), "%s.msg", result.generated_ids[0]);
    size_t len = 0;
    text = file_text(queue, name, &len);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK(has_line(text, len, "Subject: Delayed Mail (still being retried)"));
        CHECK(has_line(text, len, "Final-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(text, len, "Action: delayed"));
        CHECK(has_line(text, len, "Status: 4.7.1"));
        CHECK(has_line(text, len, "Will-Retry-Until: Mon, 16 Dec 2024 06:53:20 +0000"));
        CHECK(strstr(text, "carol@remote.test") == NULL); /* delivered */
        CHECK(strstr(text, "dave@remote.test") == NULL);  /* NOTIFY without DELAY */
        CHECK(occurrences(text, len, "Final-Recipient:") == 1);
        /* Headers only, never the whole message, in a warning. */
        CHECK(has_line(text, len, "Content-Type: text/rfc822-headers"));
        CHECK(strstr(text, "the body of the original") == NULL);
    }
    free(text);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);

    /* The next attempt, reloaded: no second warning, warned_at kept. */
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.warned_at == now);
    params = params_at(now + 3600);
    struct queue_outcome again = {
        .rcpt_index = 0, .kind = QUEUE_OUTCOME_DEFERRED, .reply = "451 4.7.1 greylisted"};
    CHECK(queue_outcome_apply(queue, &entry, &again, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    CHECK(entry.warned_at == now);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 1);
    CHECK(queue_entry_remove(queue, id) == 0);

    /* The null sender: no warning to send, but it counts as given, so it
     * is not looked at again. */
    id = "00000000000000E3";
    struct queue_rcpt nobody = {.address = "bob@remote.test"};
    store(queue, id, "", ARRIVAL, &nobody, 1, message_text);
    CHECK(load(queue, id, &entry) == 0);
    params = params_at(now);
    CHECK(queue_outcome_apply(queue, &entry, &again, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    CHECK(entry.warned_at == now);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 1);
    CHECK(queue_entry_remove(queue, id) == 0);

    /* Warnings off (the default): never. */
    struct queue_schedule_policy off;
    queue_schedule_defaults(&off);
    id = "00000000000000E2";
    struct queue_rcpt one = {.address = "bob@remote.test"};
    store(queue, id, SENDER, ARRIVAL, &one, 1, message_text);
    CHECK(load(queue, id, &entry) == 0);
    params = params_at(ARRIVAL + 4 * 86400);
    params.policy = &off;
    CHECK(queue_outcome_apply(queue, &entry, &again, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    CHECK(entry.warned_at == 0);
    queue_entry_release(&entry);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

/* NOTIFY=SUCCESS: a success report for delivered and relayed recipients;
 * a failure in the same attempt is a bounce of its own. */
/* Delivered to a next hop with DSN: NOTIFY=SUCCESS went along, so the
 * report is that hop's; we make none (RFC 3461 5.2.2). */
static void
test_passed_on(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000F4";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test", .notify = QUEUE_NOTIFY_SUCCESS},
        {.address = "carol@remote.test", .notify = QUEUE_NOTIFY_SUCCESS},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[2] = {
        {.rcpt_index = 0,
         .kind = QUEUE_OUTCOME_PASSED_ON,
         .reply = "250 2.0.0 Ok",
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 1, .kind = QUEUE_OUTCOME_DEFERRED, .reply = "451 4.3.0 later"},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result) == 0);
    CHECK(!result.is_removed);
    CHECK(result.generated_count == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_DELIVERED);
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_PENDING);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 1);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

static void
test_success(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000F1";
    struct queue_rcpt rcpts[4] = {
        {.address = "bob@remote.test", .notify = QUEUE_NOTIFY_SUCCESS},
        {.address = "carol@remote.test", .notify = QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE},
        {.address = "dave@remote.test"}, /* delivered, no SUCCESS: not reported */
        {.address = "erin@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 4, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[4] = {
        {.rcpt_index = 0,
         .kind = QUEUE_OUTCOME_DELIVERED,
         .reply = "250 2.0.0 Ok",
         .remote_mta = "mx.remote.test"},
        {.rcpt_index = 1,
         .kind = QUEUE_OUTCOME_RELAYED,
         .reply = "250 2.0.0 Ok",
         .remote_mta = "old.remote.test"},
        {.rcpt_index = 2, .kind = QUEUE_OUTCOME_DELIVERED, .reply = "250 2.0.0 Ok"},
        {.rcpt_index = 3, .kind = QUEUE_OUTCOME_FAILED, .reply = "554 5.7.1 rejected"},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 4, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 2);
    CHECK(strcmp(result.generated_ids[0], result.generated_ids[1]) != 0);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 2);
    /* The bounce first, then the success report. */
    struct dsn_parsed p;
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.head, p.head_len, "Subject: Undelivered Mail Returned to Sender"));
        CHECK(has_line(p.part[1], p.part_len[1], "Final-Recipient: rfc822; erin@remote.test"));
        CHECK(has_line(p.part[1], p.part_len[1], "Status: 5.7.1"));
        CHECK(occurrences(p.part[1], p.part_len[1], "Final-Recipient:") == 1);
    }
    dsn_free(&p);
    CHECK(dsn_parse(queue, result.generated_ids[1], SENDER, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.head, p.head_len, "Subject: Successful Mail Delivery Report"));
        const char *status = p.part[1];
        size_t status_len = p.part_len[1];
        CHECK(occurrences(status, status_len, "Final-Recipient:") == 2);
        CHECK(has_line(status, status_len, "Final-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(status, status_len, "Action: delivered"));
        CHECK(has_line(status, status_len, "Final-Recipient: rfc822; carol@remote.test"));
        CHECK(has_line(status, status_len, "Action: relayed"));
        CHECK(has_line(status, status_len, "Remote-MTA: dns; old.remote.test"));
        CHECK(occurrences(status, status_len, "\r\nStatus: 2.0.0\r\n") == 2);
        CHECK(memmem(status, status_len, "dave", 4) == NULL);
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(queue_entry_remove(queue, result.generated_ids[1]) == 0);
    queue_close(&queue);
}

/* A crash between the DSN and the envelope update, simulated by an update
 * that cannot write its temporary file (a directory in the way): the call
 * fails, the bounce is durable and named in the result, the envelope is
 * as before (on disk and in memory). The next attempt does it all again:
 * a second bounce, never none, and the envelope updated. */
static void
test_crash_between(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000A9";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    char *before = env_text(queue, id);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome outcomes[2] = {
        {.rcpt_index = 0, .kind = QUEUE_OUTCOME_FAILED, .reply = "550 5.1.1 no such user"},
        {.rcpt_index = 1, .kind = QUEUE_OUTCOME_DEFERRED, .reply = "451 later"},
    };
    CHECK(mkdirat(queue_dir_fd(queue), "00000000000000A9.env.tmp", 0700) == 0);
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    int rc = queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result);
    CHECK(rc < 0);
    CHECK(result.generated_count == 1);
    char first_bounce[SPOOL_QUEUE_ID_BYTES];
    memcpy(first_bounce, result.generated_ids[0], sizeof(first_bounce));
    /* The bounce is an entry of its own file (the envelope its attribute). */
    CHECK(exists(queue, first_bounce, ".msg"));
    CHECK(!exists(queue, first_bounce, ".env"));
    struct queue_entry bounce;
    CHECK(load(queue, first_bounce, &bounce) == 0);
    queue_entry_release(&bounce);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_PENDING); /* memory as before */
    CHECK(entry.rcpts[0].attempts == 0);
    char *after = env_text(queue, id);
    CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);
    free(after);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000A9.env.tmp", AT_REMOVEDIR) == 0);
    /* The agent's next attempt (reloaded, the same outcomes). */
    queue_entry_release(&entry);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result) == 0);
    CHECK(result.generated_count == 1);
    CHECK(strcmp(result.generated_ids[0], first_bounce) != 0);
    queue_entry_release(&entry);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    CHECK(entry.rcpts[1].state == QUEUE_RCPT_PENDING);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 3); /* the entry and two bounces */
    struct dsn_parsed p;
    CHECK(dsn_parse(queue, first_bounce, SENDER, NOW, &p));
    dsn_free(&p);
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, NOW, &p));
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, first_bounce) == 0);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(queue_entry_remove(queue, id) == 0);
    free(before);
    queue_close(&queue);
}

/* Bad outcomes: -EINVAL, and nothing changed on disk or in memory, no DSN
 * made (even when a valid failure comes first in the list). */
static void
test_bad_outcomes(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000BB";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test", .state = QUEUE_RCPT_DELIVERED, .attempts = 1},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    char *before = env_text(queue, id);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    const struct queue_outcome fail0 = {
        .rcpt_index = 0, .kind = QUEUE_OUTCOME_FAILED, .reply = "550 no"};
    struct queue_outcome cases[][2] = {
        {fail0, {.rcpt_index = 2, .kind = QUEUE_OUTCOME_DELIVERED}}, /* out of range */
        {fail0, {.rcpt_index = 1, .kind = QUEUE_OUTCOME_DELIVERED}}, /* not pending */
        {fail0, {.rcpt_index = 0, .kind = QUEUE_OUTCOME_DEFERRED}},  /* twice */
        {fail0, {.rcpt_index = (size_t)-1, .kind = QUEUE_OUTCOME_FAILED}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(queue_outcome_apply(queue, &entry, cases[i], 2, &params, &result) == -EINVAL);
        CHECK(result.generated_count == 0);
    }
    struct queue_outcome odd = {.rcpt_index = 0, .kind = (enum queue_outcome_kind)99};
    CHECK(queue_outcome_apply(queue, &entry, &odd, 1, &params, &result) == -EINVAL);
    /* More outcomes than recipients. */
    struct queue_outcome three[3] = {fail0, fail0, fail0};
    CHECK(queue_outcome_apply(queue, &entry, three, 3, &params, &result) == -EINVAL);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_PENDING);
    CHECK(entry.rcpts[0].attempts == 0);
    CHECK(entry.rcpts[1].attempts == 1);
    char *after = env_text(queue, id);
    CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);
    free(after);
    free(before);
    CHECK(entry_count(queue) == 1);
    queue_entry_release(&entry);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

/* A reply with CR, LF and other controls is stored with spaces, cut at
 * QUEUE_REPLY_BYTES - 1; a NULL reply is "". */
static void
test_reply_clean(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000CC";
    struct queue_rcpt rcpts[2] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, rcpts, 2, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    char long_reply[QUEUE_REPLY_BYTES + 100];
    memset(long_reply, 'r', sizeof(long_reply) - 1);
    long_reply[sizeof(long_reply) - 1] = '\0';
    memcpy(long_reply, "451\r\nrcpt failed 0 0 <x@y> - -\tx", 32);
    struct queue_outcome outcomes[2] = {
        {.rcpt_index = 0, .kind = QUEUE_OUTCOME_DEFERRED, .reply = long_reply},
        {.rcpt_index = 1, .kind = QUEUE_OUTCOME_DEFERRED, .reply = NULL},
    };
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, outcomes, 2, &params, &result) == 0);
    CHECK(strlen(entry.rcpts[0].last_reply) == QUEUE_REPLY_BYTES - 1);
    CHECK(strncmp(entry.rcpts[0].last_reply, "451  rcpt failed 0 0 <x@y> - - x", 32) == 0);
    CHECK_STR(entry.rcpts[1].last_reply, "");
    /* Two recipients deferred together get different jitter (with this
     * random value; the spread is the point of it). */
    CHECK(entry.rcpts[0].next_attempt != entry.rcpts[1].next_attempt);
    queue_entry_release(&entry);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.rcpt_count == 2);
    CHECK(strlen(entry.rcpts[0].last_reply) == QUEUE_REPLY_BYTES - 1);
    CHECK(strchr(entry.rcpts[0].last_reply, '\r') == NULL);
    queue_entry_release(&entry);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

/* An original over DSN_RETURN_BYTES_MAX: the bounce returns its header
 * block only, still without the Return-Path line. */
static void
test_long_original(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000DD";
    size_t body_bytes = DSN_RETURN_BYTES_MAX + 1000;
    const char head[] = "Return-Path: <alice@example.com>\r\nSubject: big\r\n\r\n";
    char *message = malloc(sizeof(head) + body_bytes + 1);
    CHECK(message != NULL);
    memcpy(message, head, sizeof(head) - 1);
    for (size_t i = 0; i < body_bytes; i += 50) {
        memcpy(message + sizeof(head) - 1 + i,
               "012345678901234567890123456789012345678901234567\r\n", 50);
    }
    message[sizeof(head) - 1 + body_bytes] = '\0';
    struct queue_rcpt rcpt = {.address = "bob@remote.test"};
    store(queue, id, SENDER, ARRIVAL, &rcpt, 1, message);
    free(message);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome failed = {
        .rcpt_index = 0, .kind = QUEUE_OUTCOME_FAILED, .reply = "552 5.3.4 message too big"};
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.generated_count == 1);
    queue_entry_release(&entry);
    struct dsn_parsed p;
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.part[2], p.part_len[2], "Content-Type: text/rfc822-headers"));
        CHECK(has_line(p.part[2], p.part_len[2], "Subject: big"));
        CHECK(memmem(p.part[2], p.part_len[2], "Return-Path", 11) == NULL);
        CHECK(memmem(p.part[2], p.part_len[2], "0123456789", 10) == NULL);
        CHECK(has_line(p.part[1], p.part_len[1], "Status: 5.3.4"));
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(entry_count(queue) == 0);
    queue_close(&queue);
}

/* A UTF-8 sender (SMTPUTF8) gets its bounce: the envelope keeps the
 * address, the report is of the RFC 6533 kind. An original that cannot be
 * read any more still gives a bounce, without the copy. A DSN that cannot
 * be composed does not hold up the envelope. */
static void
test_utf8_and_unreadable(void)
{
    struct queue *queue = queue_make();
    const char *id = "00000000000000EE";
    const char *sender = "j\xc3\xb6rg@example.com";
    struct queue_rcpt rcpt = {.address = "bob@remote.test"};
    store(queue, id, sender, ARRIVAL, &rcpt, 1, message_text);
    struct queue_entry entry;
    CHECK(load(queue, id, &entry) == 0);
    struct queue_outcome failed = {
        .rcpt_index = 0, .kind = QUEUE_OUTCOME_FAILED, .reply = "550 5.1.1 unknown"};
    struct queue_outcome_params params = params_at(NOW);
    struct queue_outcome_result result;
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.generated_count == 1);
    queue_entry_release(&entry);
    struct dsn_parsed p;
    CHECK(dsn_parse(queue, result.generated_ids[0], sender, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.part[1], p.part_len[1], "Content-Type: message/global-delivery-status"));
        CHECK(has_line(p.head, p.head_len, "To: <j\xc3\xb6rg@example.com>"));
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);

    id = "00000000000000EF";
    store(queue, id, SENDER, ARRIVAL, &rcpt, 1, message_text);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000EF.msg", 0) == 0);
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.is_removed);
    CHECK(result.generated_count == 1);
    queue_entry_release(&entry);
    CHECK(dsn_parse(queue, result.generated_ids[0], SENDER, NOW, &p));
    if (p.part_count == 3) {
        CHECK(has_line(p.part[1], p.part_len[1], "Final-Recipient: rfc822; bob@remote.test"));
        CHECK(has_line(p.part[2], p.part_len[2], "Content-Type: text/rfc822-headers"));
        CHECK(memmem(p.part[2], p.part_len[2], "Subject: lunch", 14) == NULL);
    }
    dsn_free(&p);
    CHECK(queue_entry_remove(queue, result.generated_ids[0]) == 0);
    CHECK(entry_count(queue) == 0);

    /* A DSN that cannot be composed (here: a hostname store/dsn refuses)
     * is skipped; the envelope is updated all the same. */
    id = "00000000000000F0";
    struct queue_rcpt two[2] = {
        {.address = "bob@remote.test"},
        {.address = "carol@remote.test"},
    };
    store(queue, id, SENDER, ARRIVAL, two, 2, message_text);
    CHECK(load(queue, id, &entry) == 0);
    params.hostname = "bad host";
    CHECK(queue_outcome_apply(queue, &entry, &failed, 1, &params, &result) == 0);
    CHECK(result.generated_count == 0);
    CHECK(result.pending_count == 1);
    queue_entry_release(&entry);
    CHECK(load(queue, id, &entry) == 0);
    CHECK(entry.rcpts[0].state == QUEUE_RCPT_FAILED);
    queue_entry_release(&entry);
    CHECK(entry_count(queue) == 1);
    CHECK(queue_entry_remove(queue, id) == 0);
    queue_close(&queue);
}

int
main(void)
{
    char template[] = "/tmp/test_queue_outcome.XXXXXX";
    if (mkdtemp(template) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    (void)snprintf(data_dir, sizeof(data_dir), "%s", template);
    queue_schedule_defaults(&policy);
    policy.delay_warning_s = 4 * 3600;
    CHECK(queue_schedule_check(&policy) == 0);
    test_partial();
    test_all_delivered_and_untried();
    test_bounce();
    test_no_bounce();
    test_expiry();
    test_delay_warning();
    test_success();
    test_passed_on();
    test_crash_between();
    test_bad_outcomes();
    test_reply_clean();
    test_long_original();
    test_utf8_and_unreadable();
    char command[512];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", data_dir);
    if (system(command) != 0) {
        fprintf(stderr, "could not remove %s\n", data_dir);
    }
    UNIT_DONE();
}
