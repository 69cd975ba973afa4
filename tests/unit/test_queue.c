/*
 * tests/unit/test_queue.c - the outbound queue's files: an entry written
 * and read back field for field (addresses with spaces and '+' survive
 * xtext, replies keep their text), the recipient bound at max and max + 1,
 * crash leftovers (a temporary envelope, a message without envelope)
 * ignored by a scan and removed by a cleaning one, and malformed envelopes
 * refused with a reason that names file and line. Runs in a temporary
 * directory with fsync off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    CHECK(queue_entry_remove(queue, "00000000000000B6") == 0);
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
    int env_fd;
    entry_make(&entry, "00000000000000C2", &rcpt, 1);
    CHECK(queue_entry_stage(queue, &entry, &env_fd) == 0);
    (void)close(env_fd);
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
        { "toaster-queue 2\n", ":1: unsupported version" },
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
    char command[512];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", data_dir);
    if (system(command) != 0) {
        fprintf(stderr, "could not remove %s\n", data_dir);
    }
    UNIT_DONE();
}
