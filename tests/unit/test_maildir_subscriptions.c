/*
 * tests/unit/test_maildir_subscriptions.c - the subscriptions file
 * (store/maildir_subscriptions.c).
 *
 * The file Dovecot 2.3.19.1 wrote must parse and serialize to the same
 * bytes; names go in and out with the caller's separator; add is
 * idempotent, remove keeps the order of the rest; the old unversioned
 * format reads and is written back in the current one; bad names and the
 * name length limit (max, max + 1) are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/maildir_subscriptions.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

static char out[1 << 20];

static void
check_serialized(const struct maildir_subscriptions *subs, const char *want, size_t want_len)
{
    size_t len = 0;
    CHECK(maildir_subscriptions_serialize(subs, out, sizeof(out), &len) == 0);
    CHECK_BYTES(out, len, want, want_len);
}

/* Joins all names with sep, separated by ',' for easy comparison. */
static void
check_names(const struct maildir_subscriptions *subs, char sep, const char *want)
{
    char joined[4096];
    size_t joined_len = 0;
    size_t pos = 0;
    char name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    size_t len = 0;
    while (maildir_subscriptions_next(subs, &pos, sep, name, sizeof(name), &len) == 1) {
        if (joined_len > 0) {
            joined[joined_len++] = ',';
        }
        memcpy(joined + joined_len, name, len);
        joined_len += len;
    }
    CHECK_BYTES(joined, joined_len, want, strlen(want));
}

static void
test_dovecot_file(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    size_t len = FIXTURE_READ("dovecot/subscriptions", buf);
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    size_t skipped = 99;
    CHECK(maildir_subscriptions_parse(&subs, buf, len, '.', &skipped) == 0);
    CHECK(skipped == 0);
    CHECK(!subs.was_old_format);
    CHECK(subs.live_count == 6);
    check_names(&subs, '/', "Archive,Archive/2024,INBOX,Tr&AOQ-ume,with space/sub,a\\b");
    check_names(&subs, '.', "Archive,Archive.2024,INBOX,Tr&AOQ-ume,with space.sub,a\\b");
    CHECK(maildir_subscriptions_contains(&subs, "Archive/2024", 12, '/'));
    CHECK(maildir_subscriptions_contains(&subs, "Archive.2024", 12, '.'));
    CHECK(!maildir_subscriptions_contains(&subs, "Archive.2024", 12, '/'));
    CHECK(!maildir_subscriptions_contains(&subs, "Sent", 4, '/'));
    check_serialized(&subs, buf, len);

    /* Unsubscribe keeps the order of the rest, as Dovecot does. */
    CHECK(maildir_subscriptions_remove(&subs, "Archive", 7, '/') == 0);
    CHECK(maildir_subscriptions_remove(&subs, "Archive", 7, '/') == -ENOENT);
    CHECK(maildir_subscriptions_add(&subs, "Sent", 4, '/') == 1);
    CHECK(maildir_subscriptions_add(&subs, "Sent", 4, '/') == 0);
    CHECK(maildir_subscriptions_add(&subs, "Archive", 7, '/') == 1);
    static const char want[] = "V\t2\n\nArchive\t2024\nINBOX\nTr&AOQ-ume\nwith space\tsub\n"
                               "a\\b\nSent\nArchive\n";
    check_serialized(&subs, want, sizeof(want) - 1);
    maildir_subscriptions_free(&subs);
}

static void
test_old_format_and_junk(void)
{
    static const char old[] = "INBOX\nLists.dovecot\n\nLists.dovecot\nbad\rname\nTrash";
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    size_t skipped = 0;
    CHECK(maildir_subscriptions_parse(&subs, old, sizeof(old) - 1, '.', &skipped) == 0);
    CHECK(subs.was_old_format);
    CHECK(skipped == 2);
    check_names(&subs, '/', "INBOX,Lists/dovecot,Trash");
    static const char want[] = "V\t2\n\nINBOX\nLists\tdovecot\nTrash\n";
    check_serialized(&subs, want, sizeof(want) - 1);

    /* Not the exact version 2 header: Dovecot reads the old format. */
    CHECK(maildir_subscriptions_parse(&subs, "V\t3\n\nX\n", 7, '.', &skipped) == 0);
    CHECK(subs.was_old_format);
    CHECK(skipped == 1);
    check_names(&subs, '/', "X");
    CHECK(maildir_subscriptions_parse(&subs, "V\t2\nX\n", 6, '.', &skipped) == 0);
    CHECK(subs.was_old_format);
    check_names(&subs, '/', "X");
    CHECK(maildir_subscriptions_parse(&subs, "", 0, '.', NULL) == 0);
    CHECK(subs.live_count == 0);
    check_serialized(&subs, "V\t2\n\n", 5);

    CHECK(maildir_subscriptions_add(&subs, "", 0, '/') == -EINVAL);
    CHECK(maildir_subscriptions_add(&subs, "a//b", 4, '/') == -EINVAL);
    CHECK(maildir_subscriptions_add(&subs, "a/", 2, '/') == -EINVAL);
    CHECK(maildir_subscriptions_add(&subs, "/a", 2, '/') == -EINVAL);
    CHECK(maildir_subscriptions_add(&subs, "a\tb", 3, '/') == -EINVAL);
    CHECK(maildir_subscriptions_add(&subs, "a\nb", 3, '/') == -EINVAL);
    char name[MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1];
    memset(name, 'n', sizeof(name));
    CHECK(maildir_subscriptions_add(&subs, name, MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX, '/') == 1);
    CHECK(maildir_subscriptions_add(&subs, name, MAILDIR_SUBSCRIPTION_NAME_BYTES_MAX + 1, '/') ==
          -ENAMETOOLONG);
    size_t pos = 0;
    size_t len = 0;
    char small[8];
    CHECK(maildir_subscriptions_next(&subs, &pos, '/', small, sizeof(small), &len) == -ENOBUFS);
    CHECK(pos == 0);
    CHECK(maildir_subscriptions_serialize(&subs, out, 10, &len) == -ENOBUFS);
    maildir_subscriptions_free(&subs);
}

/* Dovecot tab-escapes each level; INBOX is case-normalized. */
static void
test_escapes_and_inbox(void)
{
    static const char file[] = "V\t2\n\nx\001ty\tz\n\001\n\001q\n";
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    CHECK(maildir_subscriptions_parse(&subs, file, sizeof(file) - 1, '.', NULL) == 0);
    char name[64];
    size_t pos = 0;
    size_t len = 0;
    CHECK(maildir_subscriptions_next(&subs, &pos, '/', name, sizeof(name), &len) == 1);
    CHECK_BYTES(name, len, "x\ty/z", 5);
    CHECK(maildir_subscriptions_next(&subs, &pos, '/', name, sizeof(name), &len) == 1);
    CHECK_BYTES(name, len, "\001", 1);
    CHECK(maildir_subscriptions_next(&subs, &pos, '/', name, sizeof(name), &len) == 1);
    CHECK_BYTES(name, len, "\001q", 2);
    CHECK(maildir_subscriptions_next(&subs, &pos, '/', name, sizeof(name), &len) == 0);
    check_serialized(&subs, file, sizeof(file) - 1);

    CHECK(maildir_subscriptions_add(&subs, "a\001b/c", 5, '/') == 1);
    CHECK(maildir_subscriptions_contains(&subs, "a\001b/c", 5, '/'));
    CHECK(maildir_subscriptions_add(&subs, "inBox", 5, '/') == 1);
    CHECK(maildir_subscriptions_add(&subs, "INBOX", 5, '/') == 0);
    CHECK(maildir_subscriptions_contains(&subs, "inbox", 5, '/'));
    CHECK(maildir_subscriptions_add(&subs, "inbox/sub", 9, '/') == 1);
    static const char want[] = "V\t2\n\nx\001ty\tz\n\001\n\001q\na\0011b\tc\nINBOX\ninbox\tsub\n";
    check_serialized(&subs, want, sizeof(want) - 1);
    maildir_subscriptions_free(&subs);
}

static void
test_many(void)
{
    struct maildir_subscriptions subs;
    maildir_subscriptions_init(&subs);
    char name[32];
    for (unsigned i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof(name), "f/%u", i);
        CHECK(maildir_subscriptions_add(&subs, name, (size_t)n, '/') == 1);
        if (i % 2 == 0) {
            CHECK(maildir_subscriptions_remove(&subs, name, (size_t)n, '/') == 0);
        }
    }
    CHECK(subs.live_count == 1500);
    for (unsigned i = 0; i < 3000; i++) {
        int n = snprintf(name, sizeof(name), "f/%u", i);
        CHECK(maildir_subscriptions_contains(&subs, name, (size_t)n, '/') == (i % 2 == 1));
    }
    maildir_subscriptions_free(&subs);
}

int
main(void)
{
    test_dovecot_file();
    test_old_format_and_junk();
    test_escapes_and_inbox();
    test_many();
    UNIT_DONE();
}
