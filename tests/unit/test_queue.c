/*
 * tests/unit/test_queue.c - the outbound queue's files: an entry written
 * and read back field for field (addresses with spaces and '+' survive
 * xtext, replies keep their text), the recipient bound at max and max + 1,
 * crash leftovers (a temporary envelope, a message without envelope)
 * ignored by a scan and removed by a cleaning one, and malformed envelopes
 * refused with a reason that names file and line. Hold, release, flush
 * and delete as queue_entry_edit makes them, version 1 files read and
 * rewritten byte for byte, the entry lock contended by two processes, and
 * the leftovers of edits that crashed half-way. The "warned" line (the
 * delay warning went): round trip, version 2 only, its place after
 * "hold", refused out of order. Runs in a temporary directory with fsync
 * off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/queue.h"
#include "tests/unit/unit.h"

static char data_dir[256];

static const char message_text[] = "Return-Path: <a@b.test>\r\nSubject: x\r\n\r\nhello\r\n";

/* A named source file in data_dir holding message_text. */
static int
source_make(struct queue_source *source, int *dir_fd_out)
{
    int dir_fd = open(data_dir, O_RDONLY | O_DIRECTORY);
    CHECK(dir_fd >= 0);
    (void)unlinkat(dir_fd, "src", 0);
    int fd = openat(dir_fd, "src", O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, message_text, sizeof(message_text) - 1) ==
          (ssize_t)(sizeof(message_text) - 1));
    *source = (struct queue_source){ .fd = fd, .is_unnamed = false, .dir_fd = dir_fd,
                                     .name = "src" };
    *dir_fd_out = dir_fd;
    return fd;
}

static void
entry_make(struct queue_entry *entry, const char *id, struct queue_rcpt *rcpts, size_t count)
{
    memset(entry, 0, sizeof(*entry));
    (void)snprintf(entry->id, sizeof(entry->id), "%s", id);
    entry->arrival = 1733900000;
    entry->size = sizeof(message_text) - 1;
    (void)snprintf(entry->mail_from, sizeof(entry->mail_from), "alice+tag@example.com");
    entry->ret = QUEUE_RET_HDRS;
    (void)snprintf(entry->envid, sizeof(entry->envid), "env id=1");
    (void)snprintf(entry->user, sizeof(entry->user), "alice@example.com");
    entry->rcpts = rcpts;
    entry->rcpt_count = count;
}

static int
count_visit(void *ctx, const char *id)
{
    (void)id;
    (*(int *)ctx)++;
    return 0;
}

static bool
exists(struct queue *queue, const char *name)
{
    return faccessat(queue_dir_fd(queue), name, F_OK, 0) == 0;
}

static void
test_round_trip(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    struct queue_source source;
    int dir_fd;
    int fd = source_make(&source, &dir_fd);
    struct queue_rcpt rcpts[3] = {
        { .address = "bob@remote.test", .orcpt = "rfc822;bob@remote.test",
          .notify = QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY },
        { .address = "\"odd user\"@remote.test", .orcpt = "", .notify = 0,
          .state = QUEUE_RCPT_FAILED, .attempts = 3, .next_attempt = 1733903600,
          .last_reply = "550 5.1.1 no such\r\nuser" },
        { .address = "c=d+e@remote.test", .orcpt = "rfc822;team+40example.com",
          .notify = QUEUE_NOTIFY_NEVER, .state = QUEUE_RCPT_DELIVERED },
    };
    struct queue_entry entry;
    entry_make(&entry, "00000000000000A1", rcpts, 3);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    CHECK(exists(queue, "00000000000000A1.env"));
    CHECK(exists(queue, "00000000000000A1.msg"));
    CHECK(!exists(queue, "00000000000000A1.env.tmp"));
    /* The same id twice is refused, and leaves the first intact. */
    CHECK(queue_entry_store(queue, &entry, &source) == -EEXIST);

    struct queue_entry loaded;
    char err[256];
    int rc = queue_entry_load(queue, "00000000000000A1", &loaded, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "load: %s\n", err);
        return;
    }
    CHECK_STR(loaded.id, "00000000000000A1");
    CHECK(loaded.arrival == 1733900000);
    CHECK(loaded.size == sizeof(message_text) - 1);
    CHECK_STR(loaded.mail_from, "alice+tag@example.com");
    CHECK(loaded.ret == QUEUE_RET_HDRS);
    CHECK_STR(loaded.envid, "env id=1");
    CHECK_STR(loaded.user, "alice@example.com");
    CHECK(loaded.rcpt_count == 3);
    CHECK_STR(loaded.rcpts[0].address, "bob@remote.test");
    CHECK_STR(loaded.rcpts[0].orcpt, "rfc822;bob@remote.test");
    CHECK(loaded.rcpts[0].notify == (QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY));
    CHECK(loaded.rcpts[0].state == QUEUE_RCPT_PENDING);
    CHECK_STR(loaded.rcpts[0].last_reply, "");
    CHECK_STR(loaded.rcpts[1].address, "\"odd user\"@remote.test");
    CHECK_STR(loaded.rcpts[1].orcpt, "");
    CHECK(loaded.rcpts[1].state == QUEUE_RCPT_FAILED);
    CHECK(loaded.rcpts[1].attempts == 3);
    CHECK(loaded.rcpts[1].next_attempt == 1733903600);
    CHECK_STR(loaded.rcpts[1].last_reply, "550 5.1.1 no such  user");
    CHECK_STR(loaded.rcpts[2].address, "c=d+e@remote.test");
    CHECK(loaded.rcpts[2].notify == QUEUE_NOTIFY_NEVER);
    CHECK(loaded.rcpts[2].state == QUEUE_RCPT_DELIVERED);

    /* An update (the delivery agent's) rewrites the states in place. */
    struct queue_rcpt changed[3];
    memcpy(changed, loaded.rcpts, sizeof(changed));
    changed[0].state = QUEUE_RCPT_DELIVERED;
    changed[0].attempts = 1;
    changed[0].last_reply = "250 2.0.0 Ok";
    struct queue_entry update = loaded;
    update.rcpts = changed;
    CHECK(queue_entry_update(queue, &update) == 0);
    queue_entry_release(&loaded);
    CHECK(loaded.storage == NULL);
    CHECK(queue_entry_load(queue, "00000000000000A1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpts[0].state == QUEUE_RCPT_DELIVERED);
    CHECK_STR(loaded.rcpts[0].last_reply, "250 2.0.0 Ok");
    CHECK_STR(loaded.envid, "env id=1");
    queue_entry_release(&loaded);

    /* The message file holds the bytes. */
    char bytes[256];
    int msg_fd = openat(queue_dir_fd(queue), "00000000000000A1.msg", O_RDONLY);
    CHECK(msg_fd >= 0);
    CHECK(read(msg_fd, bytes, sizeof(bytes)) == (ssize_t)(sizeof(message_text) - 1));
    CHECK(memcmp(bytes, message_text, sizeof(message_text) - 1) == 0);
    (void)close(msg_fd);

    int visited = 0;
    CHECK(queue_scan(queue, false, count_visit, &visited) == 0);
    CHECK(visited == 1);
    CHECK(queue_entry_remove(queue, "00000000000000A1") == 0);
    CHECK(!exists(queue, "00000000000000A1.env"));
    CHECK(!exists(queue, "00000000000000A1.msg"));
    CHECK(queue_entry_load(queue, "00000000000000A1", &loaded, err, sizeof(err)) == -ENOENT);
    CHECK(queue_entry_remove(queue, "00000000000000A1") == -ENOENT);
    (void)close(fd);
    (void)close(dir_fd);
    queue_close(&queue);
    CHECK(queue == NULL);
}

static void
test_bounds(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    struct queue_source source;
    int dir_fd;
    int fd = source_make(&source, &dir_fd);
    struct queue_rcpt *rcpts = calloc(QUEUE_RCPTS_MAX + 1, sizeof(*rcpts));
    CHECK(rcpts != NULL);
    for (size_t i = 0; i <= QUEUE_RCPTS_MAX; i++) {
        rcpts[i].address = "someone@remote.test";
        rcpts[i].orcpt = "";
    }
    struct queue_entry entry;
    entry_make(&entry, "00000000000000B1", rcpts, QUEUE_RCPTS_MAX - 1);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    entry_make(&entry, "00000000000000B2", rcpts, QUEUE_RCPTS_MAX);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    struct queue_entry loaded;
    char err[256];
    CHECK(queue_entry_load(queue, "00000000000000B2", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpt_count == QUEUE_RCPTS_MAX);
    queue_entry_release(&loaded);
    entry_make(&entry, "00000000000000B3", rcpts, QUEUE_RCPTS_MAX + 1);
    CHECK(queue_entry_store(queue, &entry, &source) == -EINVAL);
    CHECK(!exists(queue, "00000000000000B3.env.tmp"));
    /* No recipient, a bad id, an empty address, an ORCPT with a space. */
    entry_make(&entry, "00000000000000B4", rcpts, 0);
    CHECK(queue_entry_store(queue, &entry, &source) == -EINVAL);
    entry_make(&entry, "00000000000000b5", rcpts, 1);
    CHECK(queue_entry_store(queue, &entry, &source) == -EINVAL);
    struct queue_rcpt bad = { .address = "", .orcpt = "" };
    entry_make(&entry, "00000000000000B6", &bad, 1);
    CHECK(queue_entry_store(queue, &entry, &source) == -EINVAL);
    bad = (struct queue_rcpt){ .address = "x@y.test", .orcpt = "rfc822;a b" };
    CHECK(queue_entry_store(queue, &entry, &source) == -EINVAL);
    /* A reply longer than the bound is cut, not refused. */
    char long_reply[2 * QUEUE_REPLY_BYTES];
    memset(long_reply, 'r', sizeof(long_reply) - 1);
    long_reply[sizeof(long_reply) - 1] = '\0';
    bad = (struct queue_rcpt){ .address = "x@y.test", .orcpt = "", .last_reply = long_reply };
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    CHECK(queue_entry_load(queue, "00000000000000B6", &loaded, err, sizeof(err)) == 0);
    CHECK(strlen(loaded.rcpts[0].last_reply) == QUEUE_REPLY_BYTES - 1);
    queue_entry_release(&loaded);
    for (const char *id = "00000000000000B1"; id != NULL; id = NULL) {
        CHECK(queue_entry_remove(queue, id) == 0);
    }
    CHECK(queue_entry_remove(queue, "00000000000000B2") == 0);
    /* Retiring a finished entry removes both files too, and twice is -ENOENT. */
    CHECK(queue_entry_retire(queue, "00000000000000B6") == 0);
    CHECK(!exists(queue, "00000000000000B6.env"));
    CHECK(!exists(queue, "00000000000000B6.msg"));
    CHECK(queue_entry_retire(queue, "00000000000000B6") == -ENOENT);
    CHECK(queue_entry_retire(queue, "not-an-id") == -EINVAL);
    free(rcpts);
    (void)close(fd);
    (void)close(dir_fd);
    queue_close(&queue);
}

/* Write raw bytes as a file in the queue directory. */
static void
put(struct queue *queue, const char *name, const char *text)
{
    int fd = openat(queue_dir_fd(queue), name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    (void)close(fd);
}

static void
test_crash_leftovers(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    struct queue_source source;
    int dir_fd;
    int fd = source_make(&source, &dir_fd);
    struct queue_rcpt rcpt = { .address = "bob@remote.test", .orcpt = "" };
    struct queue_entry entry;
    entry_make(&entry, "00000000000000C1", &rcpt, 1);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    /* A crash between staging and publishing: only the temporary file. */
    struct queue_staged staged;
    entry_make(&entry, "00000000000000C2", &rcpt, 1);
    CHECK(queue_entry_stage(queue, &entry, &source, &staged) == 0);
    CHECK(!staged.is_on_message); /* the source is not exclusive */
    (void)close(staged.fd);
    CHECK(exists(queue, "00000000000000C2.env.tmp"));
    /* A crash between the message link and the envelope's rename. */
    put(queue, "00000000000000C3.msg", "partial");
    put(queue, "00000000000000C3.env.tmp", "toaster-queue 1\nid 00000000000000C3\n");
    put(queue, "stray-file", "x");

    int visited = 0;
    CHECK(queue_scan(queue, false, count_visit, &visited) == 0);
    CHECK(visited == 1); /* only the complete entry */
    CHECK(exists(queue, "00000000000000C2.env.tmp"));
    CHECK(exists(queue, "00000000000000C3.msg"));
    visited = 0;
    CHECK(queue_scan(queue, true, count_visit, &visited) == 0);
    CHECK(visited == 1);
    CHECK(!exists(queue, "00000000000000C2.env.tmp"));
    CHECK(!exists(queue, "00000000000000C3.msg"));
    CHECK(!exists(queue, "00000000000000C3.env.tmp"));
    CHECK(exists(queue, "00000000000000C1.env"));
    CHECK(exists(queue, "00000000000000C1.msg"));
    CHECK(exists(queue, "stray-file")); /* not ours: left alone */
    CHECK(unlinkat(queue_dir_fd(queue), "stray-file", 0) == 0);
    /* A second stage of the same id after a crash works once cleaned. */
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    CHECK(queue_entry_remove(queue, "00000000000000C1") == 0);
    CHECK(queue_entry_remove(queue, "00000000000000C2") == 0);
    (void)close(fd);
    (void)close(dir_fd);
    queue_close(&queue);
}

static const char good_head[] = "toaster-queue 1\nid 00000000000000D1\narrival 5\nsize 7\n"
                                "from <a@b.test>\nret -\nenvid -\nuser -\n";

struct malformed_case {
    const char *text;
    const char *reason; /* a part of the error */
};

static void
test_malformed(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    put(queue, "00000000000000D1.msg", "1234567");
    char buf[1024];
    const struct malformed_case cases[] = {
        { "", "not a regular file" },
        { "toaster-queue 3\n", ":1: unsupported version" },
        { "toaster-queue 0\n", ":1: unsupported version" },
        { "%shold 5 why\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: \"hold\" in a version 1" },
        { "toaster-queue 1\nid 00000000000000D2\n", ":2: id does not match" },
        { "toaster-queue 1\nid 00000000000000D1\narrival -1\n", ":3: bad arrival" },
        { "toaster-queue 1\nid 00000000000000D1\narrival 5\n", ":4: file ends before \"size\"" },
        { "toaster-queue 1\nid 00000000000000D1\narrival 5\nsize 7\nfrom a@b\n",
          ":5: bad sender" },
        { "%send\n", ":9: no recipients" },
        { "%srcpt pending 0 0 <x@y> -\nend\n", ":9: rcpt line has too few fields" },
        { "%srcpt lost 0 0 <x@y> - -\nend\n", ":9: unknown recipient state" },
        { "%srcpt pending 0 0 <x y@z> - -\nend\n", ":9: bad recipient address" },
        { "%srcpt pending 0 0 <x+2@z> - -\nend\n", ":9: bad recipient address" },
        { "%srcpt pending 0 0 <x@z> - SOMETIMES\nend\n", ":9: bad NOTIFY" },
        { "%srcpt pending 0 0 <x@z> - -\n", ":10: file ends without \"end\"" },
        { "%srcpt pending 0 0 <x@z> - -\nend", ":10: file ends without \"end\"" },
        { "%srcpt pending 0 0 <x@z> - -\nend\nmore\n", "bytes after \"end\"" },
        { "%srcpt pending 0 0 <x@z> - -\nbogus\nend\n", ":10: expected \"rcpt\" or \"end\"" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strncmp(cases[i].text, "%s", 2) == 0) {
            (void)snprintf(buf, sizeof(buf), "%s%s", good_head, cases[i].text + 2);
        } else {
            (void)snprintf(buf, sizeof(buf), "%s", cases[i].text);
        }
        put(queue, "00000000000000D1.env", buf);
        struct queue_entry loaded;
        char err[256];
        int rc = queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err));
        CHECK(rc == -EBADMSG);
        CHECK(strstr(err, "queue/00000000000000D1.env") != NULL);
        if (strstr(err, cases[i].reason) == NULL) {
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].reason);
            CHECK(false);
        }
        CHECK(loaded.storage == NULL);
    }
    /* Version 2: the hold line's own faults. */
    const struct malformed_case v2_cases[] = {
        { "hold x\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: bad hold time" },
        { "hold -5 r\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: bad hold time" },
        { "hold 5\nhold 6\nrcpt pending 0 0 <x@z> - -\nend\n", ":10: \"hold\" out of place" },
        { "rcpt pending 0 0 <x@z> - -\nhold 5\nend\n", ":10: \"hold\" out of place" },
        { "hold\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: expected \"rcpt\" or \"end\"" },
    };
    for (size_t i = 0; i < sizeof(v2_cases) / sizeof(v2_cases[0]); i++) {
        (void)snprintf(buf, sizeof(buf), "toaster-queue 2\n%s%s", good_head + 16,
                       v2_cases[i].text);
        put(queue, "00000000000000D1.env", buf);
        struct queue_entry loaded;
        char err[256];
        CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) ==
              -EBADMSG);
        if (strstr(err, v2_cases[i].reason) == NULL) {
            fprintf(stderr, "v2 case %zu: got \"%s\", want \"%s\"\n", i, err,
                    v2_cases[i].reason);
            CHECK(false);
        }
    }
    /* A reason at its bound loads; one byte more is refused. */
    {
        char *long_text = malloc(2 * QUEUE_HOLD_REASON_BYTES + 512);
        CHECK(long_text != NULL);
        for (int extra = 0; extra < 2; extra++) {
            int m = snprintf(long_text, 512, "toaster-queue 2\n%shold 5 ", good_head + 16);
            size_t reason_len = QUEUE_HOLD_REASON_BYTES - 1 + (size_t)extra;
            memset(long_text + m, 'h', reason_len);
            (void)snprintf(long_text + m + reason_len, 64, "\nrcpt pending 0 0 <x@z> - -\nend\n");
            put(queue, "00000000000000D1.env", long_text);
            struct queue_entry loaded;
            char err[256];
            int rc = queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err));
            if (extra == 0) {
                CHECK(rc == 0);
                CHECK(loaded.is_held);
                CHECK(strlen(loaded.hold_reason) == QUEUE_HOLD_REASON_BYTES - 1);
                queue_entry_release(&loaded);
            } else {
                CHECK(rc == -EBADMSG);
                CHECK(strstr(err, "hold reason longer than") != NULL);
            }
        }
        free(long_text);
    }
    /* The good one loads; a message file of another size is refused. */
    (void)snprintf(buf, sizeof(buf), "%srcpt pending 0 0 <x@z> - -\nend\n", good_head);
    put(queue, "00000000000000D1.env", buf);
    struct queue_entry loaded;
    char err[256];
    CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) == 0);
    queue_entry_release(&loaded);
    put(queue, "00000000000000D1.msg", "123456");
    CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) == -EBADMSG);
    CHECK(strstr(err, "6 bytes, the envelope says 7") != NULL);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000D1.msg", 0) == 0);
    CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) == -EBADMSG);
    /* A line over the bound. */
    char *huge = malloc(QUEUE_LINE_BYTES_MAX + 512);
    CHECK(huge != NULL);
    int n = snprintf(huge, 512, "%srcpt pending 0 0 <x@z> - - ", good_head);
    memset(huge + n, 'r', QUEUE_LINE_BYTES_MAX);
    (void)snprintf(huge + n + QUEUE_LINE_BYTES_MAX, 16, "\nend\n");
    put(queue, "00000000000000D1.msg", "1234567");
    put(queue, "00000000000000D1.env", huge);
    CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) == -EBADMSG);
    CHECK(strstr(err, "line longer than") != NULL);
    free(huge);
    CHECK(queue_entry_load(queue, "not-an-id", &loaded, err, sizeof(err)) == -EINVAL);
    CHECK(queue_entry_remove(queue, "00000000000000D1") == 0);
    queue_close(&queue);
}

static void
test_xtext(void)
{
    char out[64];
    CHECK(queue_xtext_encode("a b+c=d", out, sizeof(out)) == 13);
    CHECK_STR(out, "a+20b+2Bc+3Dd");
    CHECK(queue_xtext_encode("abc", out, 4) == 3);
    CHECK(queue_xtext_encode("abcd", out, 4) == -ENAMETOOLONG);
    CHECK(queue_xtext_encode(" ", out, 3) == -ENAMETOOLONG);
    CHECK(queue_id_is_valid("0123456789ABCDEF"));
    CHECK(!queue_id_is_valid("0123456789abcdef"));
    CHECK(!queue_id_is_valid("0123456789ABCDE"));
    CHECK(!queue_id_is_valid("0123456789ABCDEF0"));
    CHECK(!queue_id_is_valid("../../etc/passwd"));
}

/* ---- hold, release, flush, delete, locking ---------------------------------- */

static void
read_file_text(struct queue *queue, const char *name, char *out, size_t out_bytes)
{
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY);
    CHECK(fd >= 0);
    ssize_t n = fd >= 0 ? read(fd, out, out_bytes - 1) : -1;
    CHECK(n >= 0);
    out[n > 0 ? n : 0] = '\0';
    if (fd >= 0) {
        (void)close(fd);
    }
}

/* A stored entry with two pending recipients (one due later) and one
 * delivered. */
static void
entry_store_sample(struct queue *queue, const char *id)
{
    struct queue_source source;
    int dir_fd;
    int fd = source_make(&source, &dir_fd);
    struct queue_rcpt rcpts[3] = {
        { .address = "bob@remote.test", .next_attempt = 1733903600, .attempts = 2,
          .last_reply = "451 4.7.1 try later" },
        { .address = "carol@remote.test", .state = QUEUE_RCPT_DELIVERED, .attempts = 1,
          .next_attempt = 1733909999, .last_reply = "250 ok" },
        { .address = "dave@remote.test" },
    };
    struct queue_entry entry;
    entry_make(&entry, id, rcpts, 3);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    (void)close(fd);
    (void)close(dir_fd);
}

static void
test_hold_release(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    const char *id = "00000000000000E1";
    entry_store_sample(queue, id);
    char text[4096];
    char err[256];
    /* Not held: version 1, as older toasters wrote it. */
    read_file_text(queue, "00000000000000E1.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 1\n", 16) == 0);
    CHECK(strstr(text, "\nhold ") == NULL);

    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 1733950000, "spam\x01run", err,
                           sizeof(err)) == 0);
    read_file_text(queue, "00000000000000E1.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 2\n", 16) == 0);
    CHECK(strstr(text, "\nuser alice@example.com\nhold 1733950000 spam run\nrcpt ") != NULL);
    struct queue_entry loaded;
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    CHECK(loaded.held_since == 1733950000);
    CHECK_STR(loaded.hold_reason, "spam run");
    CHECK(loaded.rcpt_count == 3);
    CHECK(loaded.rcpts[0].next_attempt == 1733903600);
    CHECK_STR(loaded.rcpts[0].last_reply, "451 4.7.1 try later");
    queue_entry_release(&loaded);
    /* Held twice: nothing to do, nothing written, the first time kept. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 1733960000, "again", err,
                           sizeof(err)) == 1);
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.held_since == 1733950000);
    queue_entry_release(&loaded);
    /* A hold without a reason is a line without one. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_RELEASE, 0, NULL, err, sizeof(err)) == 0);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 7, NULL, err, sizeof(err)) == 0);
    read_file_text(queue, "00000000000000E1.env", text, sizeof(text));
    CHECK(strstr(text, "\nhold 7\nrcpt ") != NULL);

    /* Flush while held: recipients hurried, the hold stays. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_FLUSH, 8, NULL, err, sizeof(err)) == 0);
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    CHECK(loaded.rcpts[0].next_attempt == 0);
    CHECK(loaded.rcpts[0].attempts == 2);
    CHECK(loaded.rcpts[1].next_attempt == 1733909999); /* delivered: untouched */
    CHECK(loaded.rcpts[2].next_attempt == 0);
    queue_entry_release(&loaded);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_FLUSH, 9, NULL, err, sizeof(err)) == 1);

    /* Release: back to version 1, byte for byte what a fresh write gives. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_RELEASE, 0, NULL, err, sizeof(err)) == 0);
    read_file_text(queue, "00000000000000E1.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 1\n", 16) == 0);
    CHECK(strstr(text, "\nhold") == NULL);
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(!loaded.is_held);
    CHECK(loaded.held_since == 0);
    CHECK_STR(loaded.hold_reason, "");
    queue_entry_release(&loaded);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_RELEASE, 0, NULL, err, sizeof(err)) == 1);

    /* No such entry, a bad id. */
    CHECK(queue_entry_edit(queue, "00000000000000E9", QUEUE_EDIT_HOLD, 1, NULL, err,
                           sizeof(err)) == -ENOENT);
    CHECK(strstr(err, "no such entry") != NULL);
    CHECK(queue_entry_edit(queue, "../E1", QUEUE_EDIT_HOLD, 1, NULL, err, sizeof(err)) ==
          -EINVAL);

    /* Delete: both files gone. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_DELETE, 0, NULL, err, sizeof(err)) == 0);
    CHECK(!exists(queue, "00000000000000E1.env"));
    CHECK(!exists(queue, "00000000000000E1.msg"));
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_DELETE, 0, NULL, err, sizeof(err)) == -ENOENT);
    queue_close(&queue);
}

/* A version 1 file as the first toaster wrote it, read and then held: the
 * compatibility promise of store/queue.h. */
static void
test_version_compat(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    put(queue, "00000000000000F1.msg", "1234567");
    const char v1[] = "toaster-queue 1\nid 00000000000000F1\narrival 5\nsize 7\n"
                      "from <>\nret full\nenvid -\nuser -\n"
                      "rcpt pending 1 99 <x@remote.test> rfc822;y@example.com FAILURE 421 busy\n"
                      "end\n";
    put(queue, "00000000000000F1.env", v1);
    struct queue_entry loaded;
    char err[256];
    CHECK(queue_entry_load(queue, "00000000000000F1", &loaded, err, sizeof(err)) == 0);
    CHECK(!loaded.is_held);
    CHECK_STR(loaded.mail_from, "");
    CHECK_STR(loaded.rcpts[0].last_reply, "421 busy");
    /* Rewritten unchanged, the file is the same bytes. */
    CHECK(queue_entry_update(queue, &loaded) == 0);
    queue_entry_release(&loaded);
    char text[1024];
    read_file_text(queue, "00000000000000F1.env", text, sizeof(text));
    CHECK_STR(text, v1);
    /* Version 2 without a hold line is accepted too. */
    put(queue, "00000000000000F1.env",
        "toaster-queue 2\nid 00000000000000F1\narrival 5\nsize 7\n"
        "from <>\nret full\nenvid -\nuser -\nrcpt pending 1 99 <x@remote.test> - -\nend\n");
    CHECK(queue_entry_load(queue, "00000000000000F1", &loaded, err, sizeof(err)) == 0);
    CHECK(!loaded.is_held);
    queue_entry_release(&loaded);
    /* A version 1 file held becomes version 2 with everything else kept. */
    put(queue, "00000000000000F1.env", v1);
    CHECK(queue_entry_edit(queue, "00000000000000F1", QUEUE_EDIT_HOLD, 10, "check", err,
                           sizeof(err)) == 0);
    read_file_text(queue, "00000000000000F1.env", text, sizeof(text));
    CHECK_STR(text, "toaster-queue 2\nid 00000000000000F1\narrival 5\nsize 7\n"
                    "from <>\nret full\nenvid -\nuser -\nhold 10 check\n"
                    "rcpt pending 1 99 <x@remote.test> rfc822;y@example.com FAILURE 421 busy\n"
                    "end\n");
    CHECK(queue_entry_edit(queue, "00000000000000F1", QUEUE_EDIT_DELETE, 0, NULL, err,
                           sizeof(err)) == 0);
    queue_close(&queue);
}

/* Two processes: a child holds the lock; the parent's non-waiting try is
 * refused, its waiting edit blocks until the child lets go, and then sees
 * what the child wrote. */
static void
test_lock_contention(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    const char *id = "00000000000000C1";
    entry_store_sample(queue, id);
    int to_parent[2];
    int to_child[2];
    CHECK(pipe(to_parent) == 0);
    CHECK(pipe(to_child) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int lock_fd = -1;
        char byte = 'x';
        int rc = queue_entry_lock(queue, id, false, &lock_fd);
        byte = rc == 0 ? 'L' : 'E';
        (void)write(to_parent[1], &byte, 1);
        (void)read(to_child[0], &byte, 1); /* wait for the parent's go */
        /* Change the entry under the lock, as the delivery agent would. */
        struct queue_entry entry;
        char err[256];
        if (queue_entry_load(queue, id, &entry, err, sizeof(err)) == 0) {
            entry.rcpts[0].attempts = 42;
            (void)queue_entry_update(queue, &entry);
            queue_entry_release(&entry);
        }
        usleep(200 * 1000); /* the parent is blocked in the meantime */
        queue_entry_unlock(&lock_fd);
        _exit(lock_fd == -1 ? 0 : 1);
    }
    char byte = 0;
    CHECK(read(to_parent[0], &byte, 1) == 1);
    CHECK(byte == 'L');
    int lock_fd = -1;
    CHECK(queue_entry_lock(queue, id, false, &lock_fd) == -EWOULDBLOCK);
    CHECK(lock_fd == -1);
    CHECK(write(to_child[1], "g", 1) == 1);
    char err[256];
    /* Blocks until the child unlocks, then edits the child's version. */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 5, "after", err, sizeof(err)) == 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct queue_entry loaded;
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    CHECK(loaded.rcpts[0].attempts == 42);
    queue_entry_release(&loaded);
    /* Free now: a non-waiting try succeeds, and unlock is idempotent. */
    CHECK(queue_entry_lock(queue, id, false, &lock_fd) == 0);
    CHECK(lock_fd >= 0);
    queue_entry_unlock(&lock_fd);
    CHECK(lock_fd == -1);
    queue_entry_unlock(&lock_fd);
    /* A waiter whose holder deletes the entry gets -ENOENT. */
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int child_fd = -1;
        char go = 'x';
        go = queue_entry_lock(queue, id, false, &child_fd) == 0 ? 'L' : 'E';
        (void)write(to_parent[1], &go, 1);
        usleep(200 * 1000);
        int rc = queue_entry_remove(queue, id);
        queue_entry_unlock(&child_fd);
        _exit(rc == 0 ? 0 : 1);
    }
    CHECK(read(to_parent[0], &byte, 1) == 1);
    CHECK(byte == 'L');
    CHECK(queue_entry_lock(queue, id, true, &lock_fd) == -ENOENT);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(!exists(queue, "00000000000000C1.env"));
    CHECK(!exists(queue, "00000000000000C1.msg"));
    (void)close(to_parent[0]);
    (void)close(to_parent[1]);
    (void)close(to_child[0]);
    (void)close(to_child[1]);
    queue_close(&queue);
}

/* Crash-shaped leftovers of the operators' edits: a rewrite that died
 * before its rename (a stale "<id>.env.tmp"), and a delete that died
 * between its two unlinks (a message without envelope). */
static void
test_edit_leftovers(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    const char *id = "00000000000000B1";
    entry_store_sample(queue, id);
    put(queue, "00000000000000B1.env.tmp", "toaster-queue 2\nid 00000000000000B1\nhal");
    char err[256];
    /* The old envelope still counts, and the next edit replaces the stale
     * temporary file. */
    struct queue_entry loaded;
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(!loaded.is_held);
    queue_entry_release(&loaded);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 3, "x", err, sizeof(err)) == 0);
    CHECK(!exists(queue, "00000000000000B1.env.tmp"));
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    queue_entry_release(&loaded);
    /* Half a delete: the envelope went, the message stayed. No entry; a
     * lock finds none; a cleaning scan removes the message. */
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000B1.env", 0) == 0);
    int lock_fd = -1;
    CHECK(queue_entry_lock(queue, id, false, &lock_fd) == -ENOENT);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_RELEASE, 0, NULL, err, sizeof(err)) == -ENOENT);
    int visited = 0;
    CHECK(queue_scan(queue, false, count_visit, &visited) == 0);
    CHECK(visited == 0);
    CHECK(exists(queue, "00000000000000B1.msg"));
    CHECK(queue_scan(queue, true, count_visit, &visited) == 0);
    CHECK(!exists(queue, "00000000000000B1.msg"));
    /* A cleaning scan (a daemon starting) leaves alone the temporary file
     * of an entry being edited under its lock, and removes it once the
     * lock is gone. */
    entry_store_sample(queue, id);
    CHECK(queue_entry_lock(queue, id, false, &lock_fd) == 0);
    put(queue, "00000000000000B1.env.tmp", "toaster-queue 1\n");
    CHECK(queue_scan(queue, true, NULL, NULL) == 0);
    CHECK(exists(queue, "00000000000000B1.env.tmp"));
    queue_entry_unlock(&lock_fd);
    CHECK(queue_scan(queue, true, NULL, NULL) == 0);
    CHECK(!exists(queue, "00000000000000B1.env.tmp"));
    /* Likewise a message whose envelope a locked delete just removed. */
    CHECK(queue_entry_lock(queue, id, false, &lock_fd) == 0);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000B1.env", 0) == 0);
    CHECK(queue_scan(queue, true, NULL, NULL) == 0);
    CHECK(exists(queue, "00000000000000B1.msg"));
    /* The envelope was gone already; the message file goes (as it does for
     * an entry whose envelope is its attribute). */
    CHECK(queue_entry_remove(queue, id) == 0);
    CHECK(!exists(queue, "00000000000000B1.msg"));
    queue_entry_unlock(&lock_fd);
    /* A malformed envelope can still be deleted by hand. */
    entry_store_sample(queue, id);
    put(queue, "00000000000000B1.env", "garbage\n");
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 3, NULL, err, sizeof(err)) == -EBADMSG);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_DELETE, 0, NULL, err, sizeof(err)) == 0);
    CHECK(!exists(queue, "00000000000000B1.env"));
    CHECK(!exists(queue, "00000000000000B1.msg"));
    queue_close(&queue);
}

/* The delay warning's mark: written as version 2 after any hold line,
 * read back, kept across hold and release, refused where it does not
 * belong. */
static void
test_warned(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    const char *id = "00000000000000A7";
    entry_store_sample(queue, id);
    char err[256];
    char text[4096];
    struct queue_entry loaded;
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.warned_at == 0);
    loaded.warned_at = 1733912345;
    CHECK(queue_entry_update(queue, &loaded) == 0);
    queue_entry_release(&loaded);
    read_file_text(queue, "00000000000000A7.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 2\n", 16) == 0);
    CHECK(strstr(text, "\nuser alice@example.com\nwarned 1733912345\nrcpt ") != NULL);
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.warned_at == 1733912345);
    CHECK(!loaded.is_held);
    CHECK(loaded.rcpt_count == 3);
    queue_entry_release(&loaded);
    /* Held too: hold first, then warned; release keeps the mark (and
     * version 2). */
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_HOLD, 1733950000, "look", err, sizeof(err)) ==
          0);
    read_file_text(queue, "00000000000000A7.env", text, sizeof(text));
    CHECK(strstr(text, "\nuser alice@example.com\nhold 1733950000 look\nwarned 1733912345\n"
                       "rcpt ") != NULL);
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    CHECK(loaded.warned_at == 1733912345);
    queue_entry_release(&loaded);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_RELEASE, 0, NULL, err, sizeof(err)) == 0);
    read_file_text(queue, "00000000000000A7.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 2\n", 16) == 0);
    CHECK(strstr(text, "\nhold") == NULL);
    CHECK(strstr(text, "\nwarned 1733912345\nrcpt ") != NULL);
    /* Cleared again: version 1 once more. */
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    loaded.warned_at = 0;
    CHECK(queue_entry_update(queue, &loaded) == 0);
    queue_entry_release(&loaded);
    read_file_text(queue, "00000000000000A7.env", text, sizeof(text));
    CHECK(strncmp(text, "toaster-queue 1\n", 16) == 0);
    CHECK(strstr(text, "warned") == NULL);
    /* A negative time is refused on write. */
    CHECK(queue_entry_load(queue, id, &loaded, err, sizeof(err)) == 0);
    loaded.warned_at = -1;
    CHECK(queue_entry_update(queue, &loaded) == -EINVAL);
    queue_entry_release(&loaded);
    CHECK(queue_entry_edit(queue, id, QUEUE_EDIT_DELETE, 0, NULL, err, sizeof(err)) == 0);

    /* Malformed: where "warned" may not be. */
    put(queue, "00000000000000D1.msg", "1234567");
    struct warned_case {
        int version;
        const char *tail; /* after the "user" line */
        const char *reason;
    };
    const struct warned_case cases[] = {
        { 1, "warned 5\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: \"warned\" in a version 1" },
        { 2, "warned 5\nhold 6\nrcpt pending 0 0 <x@z> - -\nend\n",
          ":10: \"hold\" out of place" },
        { 2, "warned 5\nwarned 6\nrcpt pending 0 0 <x@z> - -\nend\n",
          ":10: \"warned\" out of place" },
        { 2, "rcpt pending 0 0 <x@z> - -\nwarned 5\nend\n", ":10: \"warned\" out of place" },
        { 2, "warned 0\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: bad warned time" },
        { 2, "warned -3\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: bad warned time" },
        { 2, "warned 5 x\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: bad warned time" },
        { 2, "warned\nrcpt pending 0 0 <x@z> - -\nend\n", ":9: expected \"rcpt\" or \"end\"" },
    };
    char buf[1024];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        (void)snprintf(buf, sizeof(buf), "toaster-queue %d\n%s%s", cases[i].version,
                       good_head + 16, cases[i].tail);
        put(queue, "00000000000000D1.env", buf);
        CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) ==
              -EBADMSG);
        if (strstr(err, cases[i].reason) == NULL) {
            fprintf(stderr, "warned case %zu: got \"%s\", want \"%s\"\n", i, err,
                    cases[i].reason);
            CHECK(false);
        }
        CHECK(loaded.storage == NULL);
    }
    /* The good order loads. */
    (void)snprintf(buf, sizeof(buf),
                   "toaster-queue 2\n%shold 4 r\nwarned 5\nrcpt pending 0 0 <x@z> - -\nend\n",
                   good_head + 16);
    put(queue, "00000000000000D1.env", buf);
    CHECK(queue_entry_load(queue, "00000000000000D1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held && loaded.held_since == 4);
    CHECK(loaded.warned_at == 5);
    /* Rewritten unchanged, the same bytes. */
    CHECK(queue_entry_update(queue, &loaded) == 0);
    queue_entry_release(&loaded);
    read_file_text(queue, "00000000000000D1.env", text, sizeof(text));
    CHECK_STR(text, buf);
    CHECK(queue_entry_remove(queue, "00000000000000D1") == 0);
    queue_close(&queue);
}

/* Whether the message file of id carries the envelope attribute. */
static ssize_t
attr_len(struct queue *queue, const char *id)
{
    char name[64];
    (void)snprintf(name, sizeof(name), "%s.msg", id);
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t len = fgetxattr(fd, "user.toaster.env", NULL, 0);
    (void)close(fd);
    return len;
}

static void
attr_put(struct queue *queue, const char *name, const char *text)
{
    int fd = openat(queue_dir_fd(queue), name, O_RDONLY);
    CHECK(fd >= 0);
    CHECK(fsetxattr(fd, "user.toaster.env", text, strlen(text), 0) == 0);
    (void)close(fd);
}

/* One inode per entry: an exclusive source carries its envelope as an
 * attribute; it is read, updated in place, moves to a file when it grows
 * past QUEUE_XATTR_BYTES_MAX, is locked, scanned, cleaned and removed as
 * an envelope file is. */
static void
test_envelope_attribute(void)
{
    struct queue *queue = NULL;
    CHECK(queue_open(data_dir, false, &queue) == 0);
    struct queue_source source;
    int dir_fd;
    int fd = source_make(&source, &dir_fd);
    source.is_exclusive = true;
    struct queue_rcpt rcpt = { .address = "bob@remote.test", .orcpt = "rfc822;bob@remote.test",
                               .notify = QUEUE_NOTIFY_FAILURE };
    struct queue_entry entry;
    entry_make(&entry, "00000000000000E1", &rcpt, 1);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    CHECK(exists(queue, "00000000000000E1.msg"));
    CHECK(!exists(queue, "00000000000000E1.env"));
    CHECK(!exists(queue, "00000000000000E1.env.tmp"));
    char text[QUEUE_XATTR_BYTES_MAX];
    int msg_fd = openat(queue_dir_fd(queue), "00000000000000E1.msg", O_RDONLY);
    CHECK(msg_fd >= 0);
    ssize_t len = fgetxattr(msg_fd, "user.toaster.env", text, sizeof(text) - 1);
    CHECK(len > 0);
    text[len > 0 ? len : 0] = '\0';
    CHECK(strncmp(text, "toaster-queue 1\nid 00000000000000E1\n", 36) == 0);
    CHECK(len > 4 && strcmp(text + len - 4, "end\n") == 0);
    (void)close(msg_fd);

    struct queue_entry loaded;
    char err[256];
    CHECK(queue_entry_load(queue, "00000000000000E1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpt_count == 1);
    CHECK_STR(loaded.rcpts[0].address, "bob@remote.test");
    CHECK_STR(loaded.rcpts[0].orcpt, "rfc822;bob@remote.test");
    CHECK_STR(loaded.user, "alice@example.com");
    int visited = 0;
    CHECK(queue_scan(queue, false, count_visit, &visited) == 0);
    CHECK(visited == 1);

    /* An update replaces the attribute; no file appears. */
    int lock_fd = -1;
    CHECK(queue_entry_lock(queue, "00000000000000E1", false, &lock_fd) == 0);
    struct queue_rcpt changed = loaded.rcpts[0];
    changed.address = rcpt.address; /* outlives loaded's storage */
    changed.orcpt = rcpt.orcpt;
    changed.attempts = 1;
    changed.next_attempt = 1733900300;
    changed.last_reply = "451 4.3.0 try later";
    struct queue_entry update = loaded;
    update.rcpts = &changed;
    CHECK(queue_entry_update(queue, &update) == 0);
    CHECK(!exists(queue, "00000000000000E1.env"));
    queue_entry_release(&loaded);
    CHECK(queue_entry_load(queue, "00000000000000E1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpts[0].attempts == 1);
    CHECK_STR(loaded.rcpts[0].last_reply, "451 4.3.0 try later");

    /* Grown past the bound (many recipients with long replies): the
     * envelope moves to a file and the attribute goes. */
    enum { MANY = 24 };
    struct queue_rcpt many[MANY];
    char addresses[MANY][64];
    char reply[200];
    memset(reply, 'r', sizeof(reply) - 1);
    reply[sizeof(reply) - 1] = '\0';
    for (size_t i = 0; i < MANY; i++) {
        (void)snprintf(addresses[i], sizeof(addresses[i]), "user%zu@remote.test", i);
        many[i] = (struct queue_rcpt){ .address = addresses[i], .orcpt = "",
                                       .state = QUEUE_RCPT_PENDING, .last_reply = reply };
    }
    update = loaded;
    update.rcpts = many;
    update.rcpt_count = MANY;
    CHECK(queue_entry_update(queue, &update) == 0);
    CHECK(exists(queue, "00000000000000E1.env"));
    CHECK(attr_len(queue, "00000000000000E1") < 0 && errno == ENODATA);
    queue_entry_release(&loaded);
    CHECK(queue_entry_load(queue, "00000000000000E1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpt_count == MANY);
    /* Smaller again: it stays a file (a file wins over an attribute). */
    update = loaded;
    update.rcpts = &changed;
    update.rcpt_count = 1;
    CHECK(queue_entry_update(queue, &update) == 0);
    CHECK(exists(queue, "00000000000000E1.env"));
    CHECK(attr_len(queue, "00000000000000E1") < 0);
    queue_entry_release(&loaded);
    attr_put(queue, "00000000000000E1.msg", "toaster-queue 9\n"); /* stale: never read */
    CHECK(queue_entry_load(queue, "00000000000000E1", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.rcpt_count == 1);
    queue_entry_release(&loaded);
    queue_entry_unlock(&lock_fd);
    CHECK(queue_entry_remove(queue, "00000000000000E1") == 0);
    CHECK(!exists(queue, "00000000000000E1.msg"));
    (void)close(fd);

    /* Too large from the start: a file at once. */
    fd = source_make(&source, &dir_fd);
    source.is_exclusive = true;
    entry_make(&entry, "00000000000000E2", many, MANY);
    struct queue_staged staged;
    CHECK(queue_entry_stage(queue, &entry, &source, &staged) == 0);
    CHECK(!staged.is_on_message);
    CHECK(staged.fd != fd);
    queue_entry_unstage(queue, entry.id, &staged);
    CHECK(!exists(queue, "00000000000000E2.env.tmp"));
    (void)close(fd);

    /* An attribute entry: edits, lock, removal, and a taken id. */
    fd = source_make(&source, &dir_fd);
    source.is_exclusive = true;
    entry_make(&entry, "00000000000000E3", &rcpt, 1);
    CHECK(queue_entry_store(queue, &entry, &source) == 0);
    CHECK(queue_entry_edit(queue, "00000000000000E3", QUEUE_EDIT_HOLD, 1733900500, "look",
                           err, sizeof(err)) == 0);
    CHECK(!exists(queue, "00000000000000E3.env"));
    CHECK(queue_entry_load(queue, "00000000000000E3", &loaded, err, sizeof(err)) == 0);
    CHECK(loaded.is_held);
    CHECK_STR(loaded.hold_reason, "look");
    queue_entry_release(&loaded);
    (void)close(fd);
    /* The same id from another exclusive source: refused, the first kept. */
    fd = source_make(&source, &dir_fd);
    source.is_exclusive = true;
    CHECK(queue_entry_store(queue, &entry, &source) == -EEXIST);
    CHECK(fgetxattr(fd, "user.toaster.env", NULL, 0) < 0); /* its stage undone */
    CHECK(queue_entry_load(queue, "00000000000000E3", &loaded, err, sizeof(err)) == 0);
    queue_entry_release(&loaded);
    (void)close(fd);

    /* Malformed attribute: refused with file and line, left alone. */
    put(queue, "00000000000000E4.msg", "1234567");
    attr_put(queue, "00000000000000E4.msg", "toaster-queue 9\n");
    CHECK(queue_entry_load(queue, "00000000000000E4", &loaded, err, sizeof(err)) == -EBADMSG);
    CHECK(strstr(err, "queue/00000000000000E4.msg (its envelope attribute):1: unsupported version") !=
          NULL);
    /* A message file without envelope is cleaned; attribute entries are
     * visited (malformed or not) and kept. */
    put(queue, "00000000000000E5.msg", "1234567");
    visited = 0;
    CHECK(queue_scan(queue, true, count_visit, &visited) == 0);
    CHECK(visited == 2); /* E3 and E4 */
    CHECK(!exists(queue, "00000000000000E5.msg"));
    CHECK(exists(queue, "00000000000000E4.msg"));
    CHECK(queue_entry_lock(queue, "00000000000000E5", false, &lock_fd) == -ENOENT);
    /* Removal: one unlink; then nothing is left to lock or load. */
    CHECK(queue_entry_retire(queue, "00000000000000E3") == 0);
    CHECK(!exists(queue, "00000000000000E3.msg"));
    CHECK(queue_entry_retire(queue, "00000000000000E3") == -ENOENT);
    CHECK(queue_entry_lock(queue, "00000000000000E3", false, &lock_fd) == -ENOENT);
    CHECK(queue_entry_load(queue, "00000000000000E3", &loaded, err, sizeof(err)) == -ENOENT);
    CHECK(queue_entry_remove(queue, "00000000000000E4") == 0);
    /* A message file whose attribute went (an envelope file's entry half
     * removed looks the same) cannot be locked. */
    put(queue, "00000000000000E6.msg", "1234567");
    CHECK(queue_entry_lock(queue, "00000000000000E6", false, &lock_fd) == -ENOENT);
    CHECK(unlinkat(queue_dir_fd(queue), "00000000000000E6.msg", 0) == 0);
    (void)close(dir_fd);
    queue_close(&queue);
}

int
main(void)
{
    char template[] = "/tmp/test_queue.XXXXXX";
    if (mkdtemp(template) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    (void)snprintf(data_dir, sizeof(data_dir), "%s", template);
    test_xtext();
    test_round_trip();
    test_bounds();
    test_crash_leftovers();
    test_malformed();
    test_hold_release();
    test_version_compat();
    test_lock_contention();
    test_edit_leftovers();
    test_warned();
    test_envelope_attribute();
    char command[512];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", data_dir);
    if (system(command) != 0) {
        fprintf(stderr, "could not remove %s\n", data_dir);
    }
    UNIT_DONE();
}
