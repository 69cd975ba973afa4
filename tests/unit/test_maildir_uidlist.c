/*
 * tests/unit/test_maildir_uidlist.c - dovecot-uidlist (store/maildir_uidlist.c).
 *
 * The files Dovecot 2.3.19.1 wrote (tests/unit/fixtures/dovecot/) parse,
 * look up by base and full name, and serialize back to the same bytes;
 * appends and removes give the lines Dovecot would read; extension keys
 * and unknown header keys survive; versions 1 and 2 read; corrupt files
 * are refused with their line; line length at max - 1, max, max + 1; and
 * the dotlock protocol in a temporary directory (exclusive, stale override,
 * commit renames, unlock removes), also as store/maildir_dotlock.c offers
 * it for the other files.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/maildir_dotlock.h"
#include "store/maildir_uidlist.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

static char out[1 << 20];

/* Serializes and compares with want. */
static void
check_serialized(const struct maildir_uidlist *list, const char *want, size_t want_len)
{
    size_t len = 0;
    CHECK(maildir_uidlist_serialize(list, out, sizeof(out), &len) == 0);
    CHECK_BYTES(out, len, want, want_len);
}

static void
test_dovecot_inbox(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    size_t len = FIXTURE_READ("dovecot/inbox.dovecot-uidlist", buf);
    struct maildir_uidlist list;
    size_t line = 99;
    CHECK(maildir_uidlist_parse(&list, buf, len, &line) == 0);
    CHECK(line == 0);
    CHECK(list.version_read == 3);
    CHECK(list.uidvalidity == 1795841654u);
    /* Dovecot appended records without rewriting N3: the next UID is 6. */
    CHECK(list.header_next_uid == 3);
    CHECK(list.next_uid == 6);
    CHECK(list.live_count == 5);
    CHECK(list.hdr_key_count == 3);
    CHECK(list.hdr_keys[2].key == 'G');
    CHECK_STR(list.hdr_keys[2].value, "7ffdd51d765e0a6be57a000083ecc375");

    const char *n1 = "1795841654.M500375P31461.vm,S=30,W=34";
    const struct maildir_uidlist_rec *rec = maildir_uidlist_lookup(&list, n1, strlen(n1));
    CHECK(rec != NULL && rec->uid == 1);
    const char *n1_flags = "1795841654.M500375P31461.vm,S=30,W=34:2,FS";
    rec = maildir_uidlist_lookup(&list, n1_flags, strlen(n1_flags));
    CHECK(rec != NULL && rec->uid == 1);
    rec = maildir_uidlist_lookup(&list, "1795841701.plainname.host:2,S", 29);
    CHECK(rec != NULL && rec->uid == 5);
    CHECK(maildir_uidlist_lookup(&list, "1795841701.plainname", 20) == NULL);
    CHECK(maildir_uidlist_lookup(&list, "", 0) == NULL);
    rec = maildir_uidlist_lookup_uid(&list, 4);
    CHECK(rec != NULL && strcmp(rec->name, "1795841700.M1P2Q3.toaster,S=38,W=38") == 0);
    CHECK(maildir_uidlist_lookup_uid(&list, 6) == NULL);
    CHECK(maildir_uidlist_lookup_uid(&list, 0) == NULL);

    check_serialized(&list, buf, len);

    /* Append, expunge: the header then carries the real next UID. */
    uint32_t uid = 0;
    CHECK(maildir_uidlist_append(&list, "1795841800.M2P3Q4.toaster,S=5,W=5", 33, "", &uid) == 0);
    CHECK(uid == 6);
    CHECK(maildir_uidlist_append(&list, n1_flags, strlen(n1_flags), "", &uid) == -EEXIST);
    CHECK(uid == 1);
    CHECK(maildir_uidlist_remove(&list, 2) == 0);
    CHECK(maildir_uidlist_remove(&list, 2) == -ENOENT);
    CHECK(maildir_uidlist_lookup(&list, "1795841654.M513667P31463.vm,S=30,W=34", 37) == NULL);
    static const char want[] = "3 V1795841654 N7 G7ffdd51d765e0a6be57a000083ecc375\n"
                               "1 :1795841654.M500375P31461.vm,S=30,W=34\n"
                               "3 :1795841654.M524040P31465.vm,S=30,W=34\n"
                               "4 :1795841700.M1P2Q3.toaster,S=38,W=38\n"
                               "5 :1795841701.plainname.host\n"
                               "6 :1795841800.M2P3Q4.toaster,S=5,W=5\n";
    check_serialized(&list, want, sizeof(want) - 1);

    /* What we write, we read back the same. */
    struct maildir_uidlist again;
    CHECK(maildir_uidlist_parse(&again, want, sizeof(want) - 1, NULL) == 0);
    CHECK(again.next_uid == 7);
    check_serialized(&again, want, sizeof(want) - 1);
    maildir_uidlist_free(&again);
    maildir_uidlist_free(&list);
}

static void
test_dovecot_fresh_and_empty(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    size_t len = FIXTURE_READ("dovecot/fresh.dovecot-uidlist", buf);
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_parse(&list, buf, len, NULL) == 0);
    CHECK(list.header_next_uid == 1);
    CHECK(list.next_uid == 4);
    check_serialized(&list, buf, len);
    maildir_uidlist_free(&list);

    len = FIXTURE_READ("dovecot/empty.dovecot-uidlist", buf);
    CHECK(maildir_uidlist_parse(&list, buf, len, NULL) == 0);
    CHECK(list.next_uid == 1);
    CHECK(list.live_count == 0);
    CHECK(maildir_uidlist_lookup(&list, "x", 1) == NULL);
    check_serialized(&list, buf, len);
    uint32_t uid = 0;
    CHECK(maildir_uidlist_append(&list, "a:2,S", 5, "W12", &uid) == 0);
    CHECK(uid == 1);
    static const char want[] = "3 V1795841655 N2 Ga6f88021765e0a6bed7a000083ecc375\n1 W12 :a\n";
    check_serialized(&list, want, sizeof(want) - 1);
    maildir_uidlist_free(&list);
}

static void
test_extensions(void)
{
    static const char file[] = "3 V7 N10 Gnothex Xfuture P%v.%u\n"
                               "2 W1290 S1234 GABC Zzz :1.2.host\n"
                               "9 :with space name\n";
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_parse(&list, file, sizeof(file) - 1, NULL) == 0);
    CHECK(list.next_uid == 10);
    const struct maildir_uidlist_rec *rec = maildir_uidlist_lookup_uid(&list, 2);
    CHECK(rec != NULL);
    struct span v;
    CHECK(rec != NULL && maildir_uidlist_rec_ext(rec, 'W', &v) && v.len == 4 &&
          memcmp(v.ptr, "1290", 4) == 0);
    CHECK(rec != NULL && maildir_uidlist_rec_ext(rec, 'Z', &v) && v.len == 2);
    CHECK(rec != NULL && !maildir_uidlist_rec_ext(rec, 'O', &v));
    rec = maildir_uidlist_lookup(&list, "with space name", 15);
    CHECK(rec != NULL && rec->uid == 9);
    check_serialized(&list, file, sizeof(file) - 1);
    uint32_t uid = 0;
    CHECK(maildir_uidlist_append(&list, "n", 1, "w1", &uid) == -EINVAL);
    CHECK(maildir_uidlist_append(&list, "n", 1, "W1 ", &uid) == -EINVAL);
    CHECK(maildir_uidlist_append(&list, "n\nx", 3, "", &uid) == -EINVAL);
    CHECK(maildir_uidlist_append(&list, ":2,S", 4, "", &uid) == -EINVAL);
    CHECK(maildir_uidlist_append(&list, "n", 1, "W1 G2", &uid) == 0);
    CHECK(uid == 10);
    maildir_uidlist_free(&list);

    /* UIDs exhausted. */
    static const char full[] = "3 V7 N4294967295\n";
    CHECK(maildir_uidlist_parse(&list, full, sizeof(full) - 1, NULL) == 0);
    CHECK(maildir_uidlist_append(&list, "n", 1, "", &uid) == -EOVERFLOW);
    maildir_uidlist_free(&list);
    static const char last[] = "3 V7 N1\n4294967294 :a\n";
    CHECK(maildir_uidlist_parse(&list, last, sizeof(last) - 1, NULL) == 0);
    CHECK(list.next_uid == UINT32_MAX);
    CHECK(maildir_uidlist_append(&list, "n", 1, "", &uid) == -EOVERFLOW);
    CHECK(maildir_uidlist_remove(&list, 4294967294u) == 0);
    static const char last_removed[] = "3 V7 N4294967295\n";
    check_serialized(&list, last_removed, sizeof(last_removed) - 1);
    maildir_uidlist_free(&list);
}

static void
test_old_versions(void)
{
    static const char v1[] = "1 1000 5\n1 1.a.host:2,S\n3 2.b.host\n";
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_parse(&list, v1, sizeof(v1) - 1, NULL) == 0);
    CHECK(list.version_read == 1);
    CHECK(list.uidvalidity == 1000);
    CHECK(list.next_uid == 5);
    static const char v1_as_v3[] = "3 V1000 N5\n1 :1.a.host\n3 :2.b.host\n";
    check_serialized(&list, v1_as_v3, sizeof(v1_as_v3) - 1);
    maildir_uidlist_free(&list);

    static const char v2[] = "2 1000 2\n1 0 1.a.host\n7 1 2.b.host:2,\n";
    CHECK(maildir_uidlist_parse(&list, v2, sizeof(v2) - 1, NULL) == 0);
    CHECK(list.next_uid == 8);
    CHECK(maildir_uidlist_lookup(&list, "2.b.host", 8)->uid == 7);
    maildir_uidlist_free(&list);
}

struct corrupt_case {
    const char *file;
    int         rc;
    size_t      line;
};

static const struct corrupt_case corrupt[] = {
    { "", -EINVAL, 0 },
    { "\n", -EINVAL, 1 },
    { "4 V1 N1\n", -EINVAL, 1 },
    { "3 N1\n", -EINVAL, 1 },
    { "3 V1\n", -EINVAL, 1 },
    { "3 V0 N1\n", -EINVAL, 1 },
    { "3 V1 N1 V2\n", -EINVAL, 1 },
    { "3 V1 N1 x\n", -EINVAL, 1 },
    { "3 V1 N1  G\n", -EINVAL, 1 },
    { "3 V1x N1\n", -EINVAL, 1 },
    { "3 V4294967296 N1\n", -EINVAL, 1 },
    { "3 V1 N1\n2 :a\n2 :b\n", -EINVAL, 3 },
    { "3 V1 N1\n2 :a\n1 :b\n", -EINVAL, 3 },
    { "3 V1 N1\n1 :a\n2 :a:2,S\n", -EINVAL, 3 },
    { "3 V1 N1\n1 a\n", -EINVAL, 2 },
    { "3 V1 N1\n1 :\n", -EINVAL, 2 },
    { "3 V1 N1\n0 :a\n", -EINVAL, 2 },
    { "3 V1 N1\n1 w5 :a\n", -EINVAL, 2 },
    { "3 V1 N1\n1  :a\n", -EINVAL, 2 },
    { "3 V1 N1\n:a\n", -EINVAL, 2 },
    { "3 V1 N1\n\n", -EINVAL, 2 },
    { "1 5\n", -EINVAL, 1 },
    { "3 V1 N1\n4294967295 :a\n", -EINVAL, 2 },
};

static void
test_corrupt(void)
{
    for (size_t i = 0; i < sizeof(corrupt) / sizeof(corrupt[0]); i++) {
        struct maildir_uidlist list;
        size_t line = 0;
        int rc = maildir_uidlist_parse(&list, corrupt[i].file, strlen(corrupt[i].file), &line);
        if (rc != corrupt[i].rc || line != corrupt[i].line) {
            fprintf(stderr, "corrupt case %zu: rc %d line %zu\n", i, rc, line);
        }
        CHECK(rc == corrupt[i].rc);
        CHECK(line == corrupt[i].line);
        maildir_uidlist_free(&list);
    }
    /* No final newline is fine (Dovecot may be interrupted mid-append,
     * and the name is complete up to the end). */
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_parse(&list, "3 V1 N1\n1 :a", 12, NULL) == 0);
    CHECK(list.next_uid == 2);
    maildir_uidlist_free(&list);
}

static void
test_line_limit(void)
{
    static char file[MAILDIR_UIDLIST_LINE_BYTES_MAX + 64];
    for (size_t extra = 0; extra < 3; extra++) {
        size_t line_len = MAILDIR_UIDLIST_LINE_BYTES_MAX - 1 + extra;
        memcpy(file, "3 V1 N1\n1 :", 11);
        memset(file + 11, 'n', line_len - 3);
        file[8 + line_len] = '\n';
        struct maildir_uidlist list;
        size_t line = 0;
        int rc = maildir_uidlist_parse(&list, file, 8 + line_len + 1, &line);
        CHECK(rc == (extra < 2 ? 0 : -E2BIG));
        if (extra == 2) {
            CHECK(line == 2);
        }
        maildir_uidlist_free(&list);
    }
}

static void
test_many_records(void)
{
    /* Enough to grow and compact the index several times. */
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_init_new(&list, 42, "0123456789abcdef0123456789abcdef") == 0);
    char name[32];
    uint32_t uid = 0;
    for (unsigned i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof(name), "m%u.host", i);
        CHECK(maildir_uidlist_append(&list, name, (size_t)n, "", &uid) == 0);
        if (i % 3 == 0) {
            CHECK(maildir_uidlist_remove(&list, uid) == 0);
        }
    }
    CHECK(uid == 5000);
    CHECK(list.live_count == 5000 - 1667);
    size_t found = 0;
    for (unsigned i = 0; i < 5000; i++) {
        int n = snprintf(name, sizeof(name), "m%u.host", i);
        const struct maildir_uidlist_rec *rec = maildir_uidlist_lookup(&list, name, (size_t)n);
        if (rec != NULL && rec->uid == i + 1) {
            found++;
        }
        CHECK((rec == NULL) == (i % 3 == 0));
    }
    CHECK(found == 5000 - 1667);
    size_t len = 0;
    CHECK(maildir_uidlist_serialize(&list, out, sizeof(out), &len) == 0);
    CHECK(maildir_uidlist_serialize(&list, out, 10, &len) == -ENOBUFS);
    maildir_uidlist_free(&list);
}

static void
test_new_mailbox(void)
{
    struct maildir_uidlist list;
    CHECK(maildir_uidlist_init_new(&list, 0, NULL) == -EINVAL);
    CHECK(maildir_uidlist_init_new(&list, 5, "XYZ") == -EINVAL);
    CHECK(maildir_uidlist_init_new(&list, 1795841654u, "7ffdd51d765e0a6be57a000083ecc375") == 0);
    static const char want[] = "3 V1795841654 N1 G7ffdd51d765e0a6be57a000083ecc375\n";
    check_serialized(&list, want, sizeof(want) - 1);
    maildir_uidlist_free(&list);
    CHECK(maildir_uidlist_init_new(&list, 9, NULL) == 0);
    size_t len = 0;
    CHECK(maildir_uidlist_serialize(&list, out, sizeof(out), &len) == 0);
    CHECK(len == strlen("3 V9 N1 G") + 32 + 1);
    maildir_uidlist_free(&list);

    CHECK(maildir_uidlist_uidvalidity_next(0, 1795841654) == 1795841654u);
    CHECK(maildir_uidlist_uidvalidity_next(1795841654u, 1795841654) == 1795841655u);
    CHECK(maildir_uidlist_uidvalidity_next(1795841654u, 1000) == 1795841655u);
    CHECK(maildir_uidlist_uidvalidity_next(UINT32_MAX, 5) == 1);
    CHECK(maildir_uidlist_uidvalidity_next(0, 0) == 1);

    /* dovecot-uidvalidity as Dovecot 2.3.19.1 left it after five mailboxes. */
    uint32_t v = 0;
    CHECK(maildir_uidlist_uidvalidity_file_parse("6b0a5e7d", 8, &v) == 0);
    CHECK(v == 1795841661u);
    CHECK(maildir_uidlist_uidvalidity_file_parse("6b0a5e7d\n", 9, &v) == 0);
    CHECK(maildir_uidlist_uidvalidity_file_parse("", 0, &v) == -EINVAL);
    CHECK(maildir_uidlist_uidvalidity_file_parse("6b0a5e7d0", 9, &v) == -EINVAL);
    CHECK(maildir_uidlist_uidvalidity_file_parse("6b0a5e7g", 8, &v) == -EINVAL);
    char hex[9];
    CHECK(maildir_uidlist_uidvalidity_file_format(0x1234u, hex, sizeof(hex)) == 8);
    CHECK_STR(hex, "00001234");
    CHECK(maildir_uidlist_uidvalidity_file_format(1795841661u, hex, sizeof(hex)) == 8);
    CHECK_STR(hex, "6b0a5e7d");
}

static void
test_lock(void)
{
    char dir[] = "/tmp/test_maildir_uidlist_XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dir_fd >= 0);
    time_t now = time(NULL);
    int lock_fd = -1;
    CHECK(maildir_uidlist_lock(dir_fd, now, &lock_fd) == 0);
    int other_fd = -1;
    CHECK(maildir_uidlist_lock(dir_fd, now, &other_fd) == -EAGAIN);
    CHECK(maildir_uidlist_lock(dir_fd, now + MAILDIR_UIDLIST_LOCK_STALE_S, &other_fd) == -EAGAIN);
    static const char content[] = "3 V1 N1\n";
    CHECK(maildir_uidlist_commit(dir_fd, lock_fd, content, sizeof(content) - 1) == 0);
    struct stat st;
    CHECK(fstatat(dir_fd, MAILDIR_UIDLIST_LOCK_NAME, &st, 0) != 0 && errno == ENOENT);
    char buf[64];
    int fd = openat(dir_fd, MAILDIR_UIDLIST_NAME, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf));
    CHECK(n == (ssize_t)sizeof(content) - 1 && memcmp(buf, content, (size_t)n) == 0);
    (void)close(fd);

    /* A stale lock (a writer died) is overridden after 2 minutes. */
    CHECK(maildir_uidlist_lock(dir_fd, now, &lock_fd) == 0);
    (void)close(lock_fd);
    CHECK(maildir_uidlist_lock(dir_fd, now + MAILDIR_UIDLIST_LOCK_STALE_S + 2, &lock_fd) == 0);
    CHECK(maildir_uidlist_unlock(dir_fd, lock_fd) == 0);
    CHECK(fstatat(dir_fd, MAILDIR_UIDLIST_LOCK_NAME, &st, 0) != 0 && errno == ENOENT);

    /* The same protocol serves dovecot-keywords and subscriptions. */
    CHECK(maildir_dotlock_take(dir_fd, "subscriptions", MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S, now,
                               &lock_fd) == 0);
    CHECK(maildir_dotlock_take(dir_fd, "subscriptions", MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S,
                               now + 30, &other_fd) == -EAGAIN);
    CHECK(maildir_dotlock_take(dir_fd, "subscriptions", MAILDIR_DOTLOCK_SUBSCRIPTIONS_STALE_S,
                               now + 32, &other_fd) == 0);
    (void)close(lock_fd); /* the overridden holder */
    CHECK(maildir_dotlock_replace(dir_fd, "subscriptions", other_fd, "V\t2\n\n", 5) == 0);
    CHECK(fstatat(dir_fd, "subscriptions", &st, 0) == 0 && st.st_size == 5);
    char long_name[MAILDIR_DOTLOCK_NAME_BYTES_MAX];
    memset(long_name, 'l', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    CHECK(maildir_dotlock_take(dir_fd, long_name, 120, now, &lock_fd) == -ENAMETOOLONG);

    (void)unlinkat(dir_fd, "subscriptions", 0);
    (void)unlinkat(dir_fd, MAILDIR_UIDLIST_NAME, 0);
    (void)close(dir_fd);
    (void)rmdir(dir);
}

int
main(void)
{
    test_dovecot_inbox();
    test_dovecot_fresh_and_empty();
    test_extensions();
    test_old_versions();
    test_corrupt();
    test_line_limit();
    test_many_records();
    test_new_mailbox();
    test_lock();
    UNIT_DONE();
}
