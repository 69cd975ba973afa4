/*
 * tests/unit/test_delivery_place.c - the committer with placements (what
 * Sieve chose): copies into folders, into cur/ with flag and keyword
 * letters, of a file of the message's own (an edited header), several
 * copies of one message, none at all (discard), a generated message for
 * the outbound queue with the null sender, a folder gone since the stage
 * looked (INBOX then), a failure that undoes every copy of the message,
 * and the plain INBOX fast path beside them in one batch. The real
 * committer thread runs on a temporary data_dir; reactor_job_complete is
 * replaced by this file's, which hands the finished message back. The
 * building calls' bounds are checked at max - 1, max and max + 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/reactor.h"
#include "store/delivery.h"
#include "store/maildir_folders.h"
#include "store/maildir_name.h"
#include "tests/unit/unit.h"

static char data_dir[256];

/* ---- the reactor's side, as the committer sees it ---------------------- */

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static size_t done_count;

void
reactor_job_complete(struct job *job)
{
    (void)job;
    pthread_mutex_lock(&done_lock);
    done_count++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

static void
wait_done(size_t count)
{
    pthread_mutex_lock(&done_lock);
    while (done_count < count) {
        pthread_cond_wait(&done_cond, &done_lock);
    }
    done_count = 0;
    pthread_mutex_unlock(&done_lock);
}

/* ---- files ---------------------------------------------------------------- */

static int queue_id_counter;

/* A message whose named spool file holds text. */
static struct delivery_message *
message_new(const char *text)
{
    struct delivery_message *m = delivery_message_create();
    CHECK(m != NULL);
    (void)snprintf(m->queue_id, sizeof(m->queue_id), "00000000000%05X", ++queue_id_counter);
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/spool/%s", data_dir, m->queue_id);
    m->spool_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(m->spool_fd >= 0);
    m->size = strlen(text);
    CHECK(write(m->spool_fd, text, m->size) == (ssize_t)m->size);
    m->arrival = 1733400000;
    (void)snprintf(m->mail_from, sizeof(m->mail_from), "sender@remote.test");
    return m;
}

/* An unnamed file of the message's own, as the Sieve stage makes it. */
static int
content_new(const char *text)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/spool", data_dir);
    int fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    return fd;
}

/* A file of the message's own that has no name left (made, then
 * unlinked): a link through /proc cannot serve, so delivery copies it. */
static int
content_nameless(const char *text)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/spool/nameless", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    CHECK(unlink(path) == 0);
    return fd;
}

/* The names in dir (up to max), sorted; returns the count. */
static size_t
list_dir(const char *dir, char names[][300], size_t max)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (count < max) {
            (void)snprintf(names[count], 300, "%s", e->d_name);
        }
        count++;
    }
    (void)closedir(d);
    return count;
}

static size_t
count_in(const char *mailbox_dir, const char *sub)
{
    char path[768];
    char names[4][300];
    (void)snprintf(path, sizeof(path), "%s/mail/%s/%s", data_dir, mailbox_dir, sub);
    return list_dir(path, names, 4);
}

/* The one file in mail/<mailbox_dir>/<sub>: its name and contents. */
static void
only_file(const char *mailbox_dir, const char *sub, char *name_out, char *text_out,
          size_t text_bytes)
{
    char path[768];
    char names[4][300];
    (void)snprintf(path, sizeof(path), "%s/mail/%s/%s", data_dir, mailbox_dir, sub);
    size_t count = list_dir(path, names, 4);
    CHECK(count == 1);
    name_out[0] = '\0';
    text_out[0] = '\0';
    if (count != 1) {
        return;
    }
    (void)snprintf(name_out, 300, "%s", names[0]);
    char file[1200];
    (void)snprintf(file, sizeof(file), "%s/%s", path, names[0]);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, text_out, text_bytes - 1);
    CHECK(n >= 0);
    text_out[n > 0 ? n : 0] = '\0';
    (void)close(fd);
}

static bool
ends_with(const char *text, const char *suffix)
{
    size_t a = strlen(text);
    size_t b = strlen(suffix);
    return a >= b && strcmp(text + a - b, suffix) == 0;
}

static void
make_folder(const char *mailbox_dir, const char *folder)
{
    char root[768];
    (void)snprintf(root, sizeof(root), "%s/mail/%s", data_dir, mailbox_dir);
    CHECK(maildir_folders_make_root(root) == 0);
    int rc = maildir_folders_create(root, folder, 0);
    CHECK(rc == 0 || rc == -EEXIST);
}

/* ---- on_commit ----------------------------------------------------------- */

struct commit_seen {
    int calls;
    int result;
};

static void
on_commit(struct delivery_message *message, void *arg)
{
    struct commit_seen *seen = arg;
    seen->calls++;
    seen->result = message->result;
}

/* ---- tests ----------------------------------------------------------------- */

static const char ORIGINAL[] = "Return-Path: <sender@remote.test>\r\n"
                               "Subject: hello\r\n\r\nbody\r\n";
static const char EDITED[] = "Return-Path: <sender@remote.test>\r\n"
                             "X-Edited: yes\r\nSubject: hello\r\n\r\nbody\r\n";
static const char REPLY[] = "Return-Path: <>\r\nSubject: Auto: hello\r\n\r\naway\r\n";

static void
test_placements(void)
{
    make_folder("example.test/alice/Maildir", "Junk");
    make_folder("example.test/alice/Maildir", "Lists.toaster");

    /* Message 1: the fast path, no placements, beside the others; its
     * hook runs all the same (Sieve's log lines of a plain keep). */
    struct delivery_message *plain = message_new(ORIGINAL);
    CHECK(delivery_message_add_mailbox(plain, "carol@example.test") == 0);
    struct commit_seen plain_seen = { 0 };
    CHECK(delivery_message_on_commit(plain, on_commit, &plain_seen) == 0);
    CHECK(!delivery_message_is_placed(plain));

    /* Message 2: what several Sieve results make. */
    struct delivery_message *m = message_new(ORIGINAL);
    CHECK(delivery_message_add_mailbox(m, "alice@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "bob@example.test") == 0);
    CHECK(delivery_message_add_mailbox(m, "dave@example.test") == 0);
    CHECK(delivery_message_placements_begin(m) == 0);
    CHECK(delivery_message_placements_begin(m) == 0); /* idempotent */
    CHECK(delivery_message_is_placed(m));
    int edited = delivery_message_add_content(m, content_new(EDITED), strlen(EDITED));
    int reply = delivery_message_add_content(m, content_new(REPLY), strlen(REPLY));
    CHECK(edited == 0);
    CHECK(reply == 1);
    /* alice: fileinto "Junk"; fileinto :flags "\\Seen \\Flagged $label" "Lists.toaster"
     * (keyword letter a); keep. */
    CHECK(delivery_message_place(m, "alice@example.test", "Junk", 0, 0, -1) == 0);
    CHECK(delivery_message_place(m, "alice@example.test", "Lists.toaster",
                                 MAILDIR_FLAG_SEEN | MAILDIR_FLAG_FLAGGED, 1u, -1) == 0);
    CHECK(delivery_message_place(m, "alice@example.test", "inbox", 0, 0, -1) == 0);
    /* bob: an edited header, into INBOX with \\Answered. */
    CHECK(delivery_message_place(m, "bob@example.test", "", MAILDIR_FLAG_REPLIED, 0, edited) == 0);
    /* dave: fileinto a folder that is not there (removed after the stage
     * looked): INBOX, never nowhere. */
    CHECK(delivery_message_place(m, "dave@example.test", "Gone", 0, 0, -1) == 0);
    /* frank: a file with no name to link: written as a copy (tmp/, then
     * renamed), the same bytes. */
    int nameless = delivery_message_add_content(m, content_nameless(EDITED), strlen(EDITED));
    CHECK(nameless == 2);
    CHECK(delivery_message_place(m, "frank@example.test", "", MAILDIR_FLAG_SEEN, 0, nameless) ==
          0);
    /* The sender is remote: a vacation reply for the queue. */
    CHECK(delivery_message_add_outbound(m, reply, "sender@remote.test") == 0);
    struct commit_seen seen = { 0 };
    CHECK(delivery_message_on_commit(m, on_commit, &seen) == 0);
    CHECK(delivery_message_copy_count(m) == 6);
    CHECK(delivery_message_copy_count(plain) == 1);

    /* Message 3: every recipient discarded: no copy, still a success. */
    struct delivery_message *discarded = message_new(ORIGINAL);
    CHECK(delivery_message_add_mailbox(discarded, "alice@example.test") == 0);
    CHECK(delivery_message_placements_begin(discarded) == 0);
    CHECK(delivery_message_copy_count(discarded) == 0);

    delivery_submit(plain);
    delivery_submit(m);
    delivery_submit(discarded);
    wait_done(3);

    CHECK(plain->result == 0);
    CHECK(plain->delivered_count == 1);
    CHECK(plain_seen.calls == 1);
    CHECK(plain_seen.result == 0);
    CHECK(count_in("example.test/carol/Maildir", "new") == 1);

    CHECK(m->result == 0);
    CHECK(m->delivered_count == 6);
    CHECK(seen.calls == 1);
    CHECK(seen.result == 0);
    char name[300];
    char text[512];
    only_file("example.test/alice/Maildir/.Junk", "new", name, text, sizeof(text));
    CHECK_STR(text, ORIGINAL);
    CHECK(count_in("example.test/alice/Maildir/.Junk", "cur") == 0);
    only_file("example.test/alice/Maildir/.Lists.toaster", "cur", name, text, sizeof(text));
    CHECK(ends_with(name, ":2,FSa"));
    CHECK_STR(text, ORIGINAL);
    only_file("example.test/alice/Maildir", "new", name, text, sizeof(text));
    CHECK(!ends_with(name, ":2,"));
    CHECK(strstr(name, ",S=") != NULL);
    only_file("example.test/bob/Maildir", "cur", name, text, sizeof(text));
    CHECK_STR(text, EDITED);
    char want_size[64];
    (void)snprintf(want_size, sizeof(want_size), ",S=%zu,W=%zu:2,R", strlen(EDITED),
                   strlen(EDITED));
    CHECK(ends_with(name, want_size));
    only_file("example.test/dave/Maildir", "new", name, text, sizeof(text));
    CHECK_STR(text, ORIGINAL);
    only_file("example.test/frank/Maildir", "cur", name, text, sizeof(text));
    CHECK_STR(text, EDITED);
    CHECK(ends_with(name, ":2,S"));
    CHECK(count_in("example.test/frank/Maildir", "tmp") == 0);
    /* The reply: one queue entry with the null sender. */
    char queue[512];
    char names[8][300];
    (void)snprintf(queue, sizeof(queue), "%s/queue", data_dir);
    size_t queue_count = list_dir(queue, names, 8);
    CHECK(queue_count == 2); /* <id>.env and <id>.msg */
    bool has_env = false;
    for (size_t i = 0; i < queue_count && i < 8; i++) {
        if (!ends_with(names[i], ".env")) {
            continue;
        }
        has_env = true;
        char path[900];
        (void)snprintf(path, sizeof(path), "%s/%s", queue, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        char env[2048];
        ssize_t n = read(fd, env, sizeof(env) - 1);
        (void)close(fd);
        env[n > 0 ? n : 0] = '\0';
        CHECK(strstr(env, "\nfrom <>\n") != NULL);
        CHECK(strstr(env, "<sender@remote.test>") != NULL);
        char size_line[64];
        (void)snprintf(size_line, sizeof(size_line), "\nsize %zu\n", strlen(REPLY));
        CHECK(strstr(env, size_line) != NULL);
    }
    CHECK(has_env);

    CHECK(discarded->result == 0);
    CHECK(discarded->delivered_count == 0);
    /* alice's INBOX still holds only message 2's keep. */
    CHECK(count_in("example.test/alice/Maildir", "new") == 1);

    struct delivery_message_pool pool = { 0 };
    delivery_message_give(&pool, &plain);
    delivery_message_give(&pool, &m);
    delivery_message_give(&pool, &discarded);
    /* A message given back starts without placements. */
    struct delivery_message *again = delivery_message_take(&pool);
    CHECK(again != NULL && !delivery_message_is_placed(again));
    delivery_message_destroy(&again);
    delivery_message_pool_drain(&pool);
}

static void
test_failure_undoes_every_copy(void)
{
    /* A domain directory that is a file: the Maildir cannot be made. */
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/mail/broken.test", data_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    (void)close(fd);
    make_folder("example.test/erin/Maildir", "Work");

    struct delivery_message *m = message_new(ORIGINAL);
    CHECK(delivery_message_placements_begin(m) == 0);
    CHECK(delivery_message_place(m, "erin@example.test", "Work", 0, 0, -1) == 0);
    CHECK(delivery_message_place(m, "erin@example.test", "", MAILDIR_FLAG_SEEN, 0, -1) == 0);
    CHECK(delivery_message_place(m, "frank@broken.test", "", 0, 0, -1) == 0);
    struct commit_seen seen = { 0 };
    CHECK(delivery_message_on_commit(m, on_commit, &seen) == 0);
    delivery_submit(m);
    wait_done(1);
    CHECK(m->result != 0);
    CHECK(seen.calls == 1);
    CHECK(seen.result == m->result);
    CHECK(count_in("example.test/erin/Maildir/.Work", "new") == 0);
    CHECK(count_in("example.test/erin/Maildir", "cur") == 0);
    m->spool_fd = -1; /* closed and removed by the committer */
    delivery_message_destroy(&m);
}

static void
test_bounds(void)
{
    struct delivery_message *m = delivery_message_create();
    CHECK(m != NULL);
    CHECK(delivery_message_placements_begin(m) == 0);
    /* Names and letters. */
    CHECK(delivery_message_place(m, "", "", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "no-at-sign", "", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "../escape", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", ".Junk", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "a..b", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "a/b", 0, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "", UINT32_C(1) << 26, 0, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "", 0, UINT32_C(1) << 26, -1) == -EINVAL);
    CHECK(delivery_message_place(m, "a@example.test", "", 0, 0, 0) == -EINVAL); /* no content 0 */
    CHECK(delivery_message_place(m, "a@example.test", "", 0, 0, -2) == -EINVAL);
    CHECK(delivery_message_add_outbound(m, 0, "x@remote.test") == -EINVAL);
    CHECK(m->extras->placement_count == 0);
    /* Copies: DELIVERY_MAILBOXES_MAX - 1, max, max + 1. */
    int rc = 0;
    for (size_t i = 0; i < DELIVERY_MAILBOXES_MAX - 1 && rc == 0; i++) {
        rc = delivery_message_place(m, "a@example.test", "Junk", 0, 0, -1);
    }
    CHECK(rc == 0);
    CHECK(delivery_message_place(m, "a@example.test", "Junk", 0, 0, -1) == 0);
    CHECK(delivery_message_copy_count(m) == DELIVERY_MAILBOXES_MAX);
    CHECK(delivery_message_place(m, "a@example.test", "Junk", 0, 0, -1) == -E2BIG);
    /* Contents: DELIVERY_CONTENTS_MAX - 1, max, max + 1 (the fd is taken
     * also when refused). */
    struct rlimit limit;
    CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    limit.rlim_cur = limit.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &limit);
    bool has_room = limit.rlim_cur > DELIVERY_CONTENTS_MAX + 64;
    if (has_room) {
        int base = open("/dev/null", O_RDONLY | O_CLOEXEC);
        CHECK(base >= 0);
        rc = 0;
        for (size_t i = 0; i < DELIVERY_CONTENTS_MAX - 1 && rc >= 0; i++) {
            rc = delivery_message_add_content(m, dup(base), 0);
        }
        CHECK(rc == DELIVERY_CONTENTS_MAX - 2);
        CHECK(delivery_message_add_content(m, dup(base), 0) == DELIVERY_CONTENTS_MAX - 1);
        int extra = dup(base);
        CHECK(delivery_message_add_content(m, extra, 0) == -E2BIG);
        CHECK(fcntl(extra, F_GETFD) == -1); /* closed, as promised */
        /* Outbound: max - 1, max, max + 1. */
        rc = 0;
        for (size_t i = 0; i < DELIVERY_OUTBOUND_MAX - 1 && rc == 0; i++) {
            rc = delivery_message_add_outbound(m, 0, "x@remote.test");
        }
        CHECK(rc == 0);
        CHECK(delivery_message_add_outbound(m, 0, "x@remote.test") == 0);
        CHECK(delivery_message_add_outbound(m, 0, "x@remote.test") == -E2BIG);
        (void)close(base);
    }
    /* Destroy closes every content fd (leak checks catch the rest). */
    delivery_message_destroy(&m);
    CHECK(m == NULL);
}

int
main(void)
{
    char template[] = "/tmp/test_delivery_place.XXXXXX";
    CHECK(mkdtemp(template) != NULL);
    (void)snprintf(data_dir, sizeof(data_dir), "%s", template);
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/spool", data_dir);
    CHECK(mkdir(path, 0700) == 0);
    (void)snprintf(path, sizeof(path), "%s/mail", data_dir);
    CHECK(mkdir(path, 0700) == 0);
    CHECK(delivery_start(data_dir, "host.test", true, 0) == 0);
    test_placements();
    test_failure_undoes_every_copy();
    delivery_stop();
    test_bounds();
    char command[600];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", data_dir);
    CHECK(system(command) == 0);
    UNIT_DONE();
}
