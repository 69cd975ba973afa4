/*
 * tests/unit/test_maildir_sync.c - maildir_sync_run() on real directories
 * under a mkdtemp() root: a new mailbox, Dovecot-written fixtures (the
 * uidlist and keywords from tests/unit/fixtures/dovecot/, message files
 * recreated with the listed names), expunge, new/ -> cur/, junk names and
 * the uidlist dotlock. The root is removed at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/maildir_name.h"
#include "store/maildir_sync.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

static char root[64];

static void
path_join(char *out, size_t out_bytes, const char *a, const char *b)
{
    int n = snprintf(out, out_bytes, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= out_bytes) {
        fprintf(stderr, "path too long: %s/%s\n", a, b);
        exit(2);
    }
}

static void
write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
        perror(p);
        exit(2);
    }
}

static size_t
read_file(const char *dir, const char *name, char *buf, size_t buf_bytes)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, buf_bytes - 1);
    (void)close(fd);
    if (n < 0) {
        n = 0;
    }
    buf[n] = '\0';
    return (size_t)n;
}

static bool
exists(const char *dir, const char *name)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static void
make_maildir(const char *path)
{
    char p[1024];
    if (mkdir(path, 0700) != 0) {
        perror(path);
        exit(2);
    }
    const char *subs[] = { "new", "cur", "tmp" };
    for (size_t i = 0; i < 3; i++) {
        path_join(p, sizeof(p), path, subs[i]);
        if (mkdir(p, 0700) != 0) {
            perror(p);
            exit(2);
        }
    }
}

static const struct maildir_sync_entry *
find_uid(const struct maildir_sync_result *r, uint32_t uid)
{
    for (size_t i = 0; i < r->entry_count; i++) {
        if (r->entries[i].uid == uid) {
            return &r->entries[i];
        }
    }
    return NULL;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* New mailbox: UIDs in Dovecot name order, V and N written, dovecot-
 * uidvalidity kept, a second sync writes nothing. Then expunge + move. */
static void
test_new_mailbox(void)
{
    char box[256];
    char dnew[300];
    char dcur[300];
    path_join(box, sizeof(box), root, "Maildir");
    make_maildir(box);
    path_join(dnew, sizeof(dnew), box, "new");
    path_join(dcur, sizeof(dcur), box, "cur");
    /* usecs 3 < 20 numerically although "M20" < "M3" as bytes. */
    write_file(dnew, "1795841700.M20P1.host,S=5", "aaaaa", 5);
    write_file(dnew, "1795841700.M3P1.host,S=5", "bbbbb", 5);
    write_file(dnew, "1795841699.M999P1.host", "0123456789", 10);

    struct maildir_sync_opts opts = { .is_move_new = false, .uidvalidity_root = box,
                                      .now = 1800000000 };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.uidvalidity == 1800000000);
    CHECK(r.next_uid == 4);
    CHECK(r.added_count == 3);
    CHECK(r.expunged_count == 0);
    CHECK(r.is_uidlist_written);
    CHECK(r.entry_count == 3);
    if (r.entry_count == 3) {
        CHECK_STR(r.entries[0].name, "1795841699.M999P1.host");
        CHECK(r.entries[0].uid == 1);
        CHECK(r.entries[0].size == 10); /* from stat */
        CHECK_STR(r.entries[1].name, "1795841700.M3P1.host,S=5");
        CHECK(r.entries[1].uid == 2);
        CHECK(r.entries[1].size == 5);
        CHECK_STR(r.entries[2].name, "1795841700.M20P1.host,S=5");
        CHECK(r.entries[2].uid == 3);
        for (size_t i = 0; i < 3; i++) {
            CHECK(r.entries[i].is_recent);
            CHECK(r.entries[i].is_in_new);
            CHECK(r.entries[i].flags == 0);
        }
    }
    maildir_sync_result_free(&r);

    char first[4096];
    char second[4096];
    size_t first_len = read_file(box, "dovecot-uidlist", first, sizeof(first));
    CHECK(first_len > 0);
    CHECK(strncmp(first, "3 V1800000000 N4 G", 18) == 0);
    CHECK(strstr(first, "\n1 :1795841699.M999P1.host\n2 :1795841700.M3P1.host,S=5\n"
                        "3 :1795841700.M20P1.host,S=5\n") != NULL);
    char uv[64];
    CHECK(read_file(box, "dovecot-uidvalidity", uv, sizeof(uv)) == 8);
    CHECK_STR(uv, "6b49d200"); /* 1800000000 */
    CHECK(exists(box, "dovecot-uidvalidity.6b49d200"));
    CHECK(!exists(box, "dovecot-uidlist.lock"));

    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(!r.is_uidlist_written);
    CHECK(r.added_count == 0);
    CHECK(r.expunged_count == 0);
    CHECK(r.entry_count == 3);
    maildir_sync_result_free(&r);
    size_t second_len = read_file(box, "dovecot-uidlist", second, sizeof(second));
    CHECK_BYTES(second, second_len, first, first_len);

    /* Expunge uid 2 and move new/ to cur/; one new/ name already has info. */
    char p[512];
    path_join(p, sizeof(p), dnew, "1795841700.M3P1.host,S=5");
    CHECK(unlink(p) == 0);
    write_file(dnew, "1795841701.M1P1.host,S=3:2,S", "ccc", 3);
    opts.is_move_new = true;
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.added_count == 1);
    CHECK(r.expunged_count == 1);
    CHECK(r.next_uid == 5);
    CHECK(r.entry_count == 3);
    CHECK(find_uid(&r, 2) == NULL);
    const struct maildir_sync_entry *e = find_uid(&r, 1);
    CHECK(e != NULL && strcmp(e->name, "1795841699.M999P1.host:2,") == 0 && e->is_recent &&
          !e->is_in_new);
    e = find_uid(&r, 3);
    CHECK(e != NULL && strcmp(e->name, "1795841700.M20P1.host,S=5:2,") == 0);
    e = find_uid(&r, 4);
    CHECK(e != NULL && strcmp(e->name, "1795841701.M1P1.host,S=3:2,S") == 0 &&
          e->flags == MAILDIR_FLAG_SEEN && e->size == 3);
    maildir_sync_result_free(&r);
    CHECK(exists(dcur, "1795841699.M999P1.host:2,"));
    CHECK(exists(dcur, "1795841700.M20P1.host,S=5:2,"));
    CHECK(exists(dcur, "1795841701.M1P1.host,S=3:2,S"));
    CHECK(!exists(dnew, "1795841699.M999P1.host"));

    /* Seen again: nothing recent, nothing written. */
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(!r.is_uidlist_written);
    CHECK(r.entry_count == 3);
    for (size_t i = 0; i < r.entry_count; i++) {
        CHECK(!r.entries[i].is_recent);
        CHECK(r.entries[i].size > 0);
    }
    maildir_sync_result_free(&r);
}

/* inbox.dovecot-uidlist: V1795841654, N3 (stale: records go to 5); uid 2
 * has no file. */
static void
test_dovecot_fixture(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    char box[256];
    char dnew[300];
    char dcur[300];
    path_join(box, sizeof(box), root, ".Inbox");
    make_maildir(box);
    path_join(dnew, sizeof(dnew), box, "new");
    path_join(dcur, sizeof(dcur), box, "cur");
    size_t n = FIXTURE_READ("dovecot/inbox.dovecot-uidlist", buf);
    write_file(box, "dovecot-uidlist", buf, n);
    n = FIXTURE_READ("dovecot/dovecot-keywords", buf);
    write_file(box, "dovecot-keywords", buf, n);
    n = FIXTURE_READ("dovecot/filenames.txt", buf);
    /* The first four names belong to the inbox list; the rest to fresh. */
    char *save = NULL;
    size_t line = 0;
    char fresh[3][128];
    for (char *tok = strtok_r(buf, "\n", &save); tok != NULL; tok = strtok_r(NULL, "\n", &save)) {
        if (line < 4) {
            write_file(dcur, tok, "Subject: x\n\nbody of thirty bytes\n", 30);
        } else if (line < 7) {
            snprintf(fresh[line - 4], sizeof(fresh[0]), "%s", tok);
        }
        line++;
    }
    CHECK(line == 7);

    struct maildir_sync_opts opts = { .now = time(NULL) };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.uidvalidity == 1795841654);
    CHECK(r.next_uid == 6);
    CHECK(r.expunged_count == 1);
    CHECK(r.added_count == 0);
    CHECK(r.entry_count == 4);
    CHECK(maildir_keywords_lookup(&r.keywords, "Personal", 8) == 3);
    const struct maildir_sync_entry *e = find_uid(&r, 1);
    CHECK(e != NULL && e->flags == (MAILDIR_FLAG_FLAGGED | MAILDIR_FLAG_SEEN) && e->size == 30 &&
          e->has_vsize && e->vsize == 34 && !e->is_recent);
    e = find_uid(&r, 3);
    CHECK(e != NULL &&
          e->flags == (MAILDIR_FLAG_DRAFT | MAILDIR_FLAG_REPLIED | MAILDIR_FLAG_TRASHED) &&
          e->keywords == (UINT32_C(1) << 3));
    e = find_uid(&r, 4);
    CHECK(e != NULL && e->size == 38 && e->flags == 0);
    e = find_uid(&r, 5);
    CHECK(e != NULL && e->size == 30 && !e->has_vsize && e->flags == MAILDIR_FLAG_SEEN);
    maildir_sync_result_free(&r);

    /* An appended file gets max(N, last + 1) = 6. */
    write_file(dnew, "1795841800.M1P9.host,S=4", "abcd", 4);
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.uidvalidity == 1795841654);
    CHECK(r.added_count == 1);
    CHECK(r.expunged_count == 0);
    e = find_uid(&r, 6);
    CHECK(e != NULL && e->is_recent && e->is_in_new && e->size == 4);
    CHECK(r.next_uid == 7);
    maildir_sync_result_free(&r);

    /* fresh.dovecot-uidlist: N1 while records reach 3. */
    char box2[256];
    path_join(box2, sizeof(box2), root, ".Fresh");
    make_maildir(box2);
    path_join(dnew, sizeof(dnew), box2, "new");
    n = FIXTURE_READ("dovecot/fresh.dovecot-uidlist", buf);
    write_file(box2, "dovecot-uidlist", buf, n);
    for (size_t i = 0; i < 3; i++) {
        write_file(dnew, fresh[i], "Subject: y\n\nbody 25 bytes\n", 25);
    }
    write_file(dnew, "1795841900.M1P1.host,S=1", "z", 1);
    CHECK(maildir_sync_run(box2, &opts, &r) == 0);
    CHECK(r.uidvalidity == 1795841658);
    CHECK(r.added_count == 1);
    CHECK(r.entry_count == 4);
    for (uint32_t uid = 1; uid <= 3; uid++) {
        e = find_uid(&r, uid);
        CHECK(e != NULL && strcmp(e->name, fresh[uid - 1]) == 0);
    }
    e = find_uid(&r, 4);
    CHECK(e != NULL && strcmp(e->name, "1795841900.M1P1.host,S=1") == 0);
    maildir_sync_result_free(&r);
}

/* Dot files, directories and a name in both new/ and cur/. */
static void
test_junk(void)
{
    char box[256];
    char dnew[300];
    char dcur[300];
    path_join(box, sizeof(box), root, ".Junk");
    make_maildir(box);
    path_join(dnew, sizeof(dnew), box, "new");
    path_join(dcur, sizeof(dcur), box, "cur");
    write_file(dcur, ".hidden", "x", 1);
    write_file(dnew, ".1795841700.M1P1.host", "x", 1);
    char p[512];
    path_join(p, sizeof(p), dcur, "subdir");
    CHECK(mkdir(p, 0700) == 0);
    write_file(dnew, "1795841700.M5P1.host,S=2", "xx", 2);
    write_file(dcur, "1795841700.M5P1.host,S=2:2,S", "xx", 2);
    write_file(dcur, "1795841701.M5P1.host,S=2:2,", "xx", 2);
    /* Same base twice in cur/ (left by a crash): one entry, not -EAGAIN. */
    write_file(dcur, "1795841702.M5P1.host,S=2:2,S", "xx", 2);
    write_file(dcur, "1795841702.M5P1.host,S=2:2,T", "xx", 2);

    struct maildir_sync_opts opts = { .now = time(NULL) };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.entry_count == 3);
    CHECK(r.added_count == 3);
    if (r.entry_count == 3) {
        CHECK_STR(r.entries[0].name, "1795841700.M5P1.host,S=2:2,S");
        CHECK(!r.entries[0].is_recent);
        CHECK_STR(r.entries[1].name, "1795841701.M5P1.host,S=2:2,");
        CHECK_STR(r.entries[2].name, "1795841702.M5P1.host,S=2:2,S");
    }
    maildir_sync_result_free(&r);
}

/* A fresh lock held by someone else: -EAGAIN, nothing touched. A stale one
 * is taken over. Missing directories: -ENOENT. */
static void
test_lock(void)
{
    char box[256];
    char dnew[300];
    path_join(box, sizeof(box), root, ".Locked");
    make_maildir(box);
    path_join(dnew, sizeof(dnew), box, "new");
    write_file(dnew, "1795841700.M1P1.host,S=1", "x", 1);
    write_file(box, "dovecot-uidlist.lock", "", 0);

    time_t now = time(NULL);
    struct maildir_sync_opts opts = { .now = now };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == -EAGAIN);
    CHECK(r.entry_count == 0 && r.entries == NULL);
    maildir_sync_result_free(&r);
    CHECK(!exists(box, "dovecot-uidlist"));
    CHECK(exists(box, "dovecot-uidlist.lock"));

    char p[512];
    path_join(p, sizeof(p), box, "dovecot-uidlist.lock");
    struct timespec ts[2] = { { .tv_sec = now - 200 }, { .tv_sec = now - 200 } };
    CHECK(utimensat(AT_FDCWD, p, ts, 0) == 0);
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.entry_count == 1);
    CHECK(r.is_uidlist_written);
    maildir_sync_result_free(&r);
    CHECK(exists(box, "dovecot-uidlist"));
    CHECK(!exists(box, "dovecot-uidlist.lock"));

    char gone[256];
    path_join(gone, sizeof(gone), root, ".Gone");
    CHECK(maildir_sync_run(gone, &opts, &r) == -ENOENT);
    CHECK(mkdir(gone, 0700) == 0);
    CHECK(maildir_sync_run(gone, &opts, &r) == -ENOENT); /* no new/ cur/ */
    CHECK(!exists(gone, "dovecot-uidlist.lock"));
    CHECK(!exists(gone, "dovecot-uidlist"));
}

/* messages_max at max - 1, max and max + 1 files. */
static void
test_limit(void)
{
    char box[256];
    char dnew[300];
    char dcur[300];
    path_join(box, sizeof(box), root, ".Limit");
    make_maildir(box);
    path_join(dnew, sizeof(dnew), box, "new");
    path_join(dcur, sizeof(dcur), box, "cur");
    write_file(dnew, "1795841700.M1P1.host,S=1", "x", 1);
    write_file(dcur, "1795841700.M2P1.host,S=1:2,", "x", 1);
    write_file(dcur, "1795841700.M3P1.host,S=1:2,", "x", 1);
    struct maildir_sync_opts opts = { .now = time(NULL), .messages_max = 4 };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.entry_count == 3);
    maildir_sync_result_free(&r);
    write_file(dcur, "1795841700.M4P1.host,S=1:2,", "x", 1);
    CHECK(maildir_sync_run(box, &opts, &r) == 0);
    CHECK(r.entry_count == 4);
    CHECK(r.added_count == 1);
    maildir_sync_result_free(&r);
    char before[4096];
    size_t before_len = read_file(box, "dovecot-uidlist", before, sizeof(before));
    write_file(dnew, "1795841700.M5P1.host,S=1", "x", 1);
    CHECK(maildir_sync_run(box, &opts, &r) == -E2BIG);
    CHECK(r.entries == NULL);
    CHECK(!exists(box, "dovecot-uidlist.lock"));
    char after[4096];
    size_t after_len = read_file(box, "dovecot-uidlist", after, sizeof(after));
    CHECK_BYTES(after, after_len, before, before_len);
}

/* A corrupt uidlist is reported, left alone, and unlocked. */
static void
test_corrupt(void)
{
    char box[256];
    path_join(box, sizeof(box), root, ".Corrupt");
    make_maildir(box);
    write_file(box, "dovecot-uidlist", "3 V1 N2\n2 :a\n1 :b\n", 19);
    struct maildir_sync_opts opts = { .now = time(NULL) };
    struct maildir_sync_result r;
    CHECK(maildir_sync_run(box, &opts, &r) == -EINVAL);
    CHECK(!exists(box, "dovecot-uidlist.lock"));
    char buf[64];
    CHECK(read_file(box, "dovecot-uidlist", buf, sizeof(buf)) == 19);
}

int
main(void)
{
    snprintf(root, sizeof(root), "/tmp/toaster-sync-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_new_mailbox();
    test_dovecot_fixture();
    test_junk();
    test_lock();
    test_corrupt();
    test_limit();
    if (nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        perror(root);
    }
    UNIT_DONE();
}
