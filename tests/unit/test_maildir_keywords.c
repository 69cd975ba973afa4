/*
 * tests/unit/test_maildir_keywords.c - the dovecot-keywords table
 * (store/maildir_keywords.c).
 *
 * The file Dovecot 2.3.19.1 wrote must parse and serialize to the same
 * bytes; lookups are case-insensitive; new keywords take the first free
 * letter up to the 26th (max - 1, max, max + 1); damaged lines are skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/maildir_keywords.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

static struct maildir_keywords kw;

static void
test_dovecot_file(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    size_t len = FIXTURE_READ("dovecot/dovecot-keywords", buf);
    size_t skipped = 99;
    CHECK(maildir_keywords_parse(&kw, buf, len, &skipped) == 0);
    CHECK(skipped == 0);
    CHECK(kw.used == 0xf);
    CHECK_STR(maildir_keywords_name(&kw, 0), "$Forwarded");
    CHECK_STR(maildir_keywords_name(&kw, 1), "Work");
    CHECK_STR(maildir_keywords_name(&kw, 2), "$Junk");
    CHECK_STR(maildir_keywords_name(&kw, 3), "Personal");
    CHECK(maildir_keywords_name(&kw, 4) == NULL);
    CHECK(maildir_keywords_name(&kw, 26) == NULL);
    CHECK(maildir_keywords_lookup(&kw, "work", 4) == 1);
    CHECK(maildir_keywords_lookup(&kw, "$FORWARDED", 10) == 0);
    CHECK(maildir_keywords_lookup(&kw, "Wor", 3) == -ENOENT);
    CHECK(maildir_keywords_lookup(&kw, "Works", 5) == -ENOENT);

    char out[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    size_t out_len = 0;
    CHECK(maildir_keywords_serialize(&kw, out, sizeof(out), &out_len) == 0);
    CHECK_BYTES(out, out_len, buf, len);
}

static void
test_add_and_limit(void)
{
    maildir_keywords_init(&kw);
    CHECK(maildir_keywords_add(&kw, "Work", 4) == 0);
    CHECK(maildir_keywords_add(&kw, "WORK", 4) == 0); /* same keyword */
    CHECK(maildir_keywords_add(&kw, "\\Seen", 5) == -EINVAL);
    CHECK(maildir_keywords_add(&kw, "a b", 3) == -EINVAL);
    CHECK(maildir_keywords_add(&kw, "", 0) == -EINVAL);
    CHECK(maildir_keywords_add(&kw, "x]", 2) == -EINVAL);
    char name[8];
    for (int i = 1; i < MAILDIR_KEYWORDS_MAX - 1; i++) {
        int n = snprintf(name, sizeof(name), "k%d", i);
        CHECK(maildir_keywords_add(&kw, name, (size_t)n) == i);
    }
    /* 25 used: the 26th (max) fits, the 27th does not. */
    CHECK(maildir_keywords_add(&kw, "last", 4) == 25);
    CHECK(maildir_keywords_add(&kw, "over", 4) == -ENOSPC);
    CHECK(maildir_keywords_add(&kw, "LAST", 4) == 25);

    char out[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    size_t out_len = 0;
    CHECK(maildir_keywords_serialize(&kw, out, sizeof(out), &out_len) == 0);
    CHECK(out_len > 10 && memcmp(out, "0 Work\n1 k1\n", 12) == 0);
    CHECK(memcmp(out + out_len - 8, "25 last\n", 8) == 0);
    CHECK(maildir_keywords_serialize(&kw, out, out_len - 1, &out_len) == -ENOBUFS);

    /* Name length at max, max + 1. */
    char long_name[MAILDIR_KEYWORD_BYTES_MAX + 1];
    memset(long_name, 'L', sizeof(long_name));
    maildir_keywords_init(&kw);
    CHECK(maildir_keywords_add(&kw, long_name, MAILDIR_KEYWORD_BYTES_MAX) == 0);
    CHECK(maildir_keywords_add(&kw, long_name, MAILDIR_KEYWORD_BYTES_MAX + 1) == -EINVAL);
}

static void
test_damaged(void)
{
    /* A gap, a repeat, junk, index past 25, leading zero, no final LF. */
    static const char file[] = "0 A\n2 C\n2 Dup\nnot a line\n26 Z\n01 Zero\n\n3 \n4 a b\n5 Last";
    size_t skipped = 0;
    CHECK(maildir_keywords_parse(&kw, file, sizeof(file) - 1, &skipped) == 0);
    CHECK(skipped == 6);
    CHECK(kw.used == ((1u << 0) | (1u << 2) | (1u << 5)));
    CHECK_STR(maildir_keywords_name(&kw, 5), "Last");
    CHECK(maildir_keywords_add(&kw, "New", 3) == 1); /* first free index */
    char out[MAILDIR_KEYWORDS_FILE_BYTES_MAX];
    size_t out_len = 0;
    CHECK(maildir_keywords_serialize(&kw, out, sizeof(out), &out_len) == 0);
    CHECK_BYTES(out, out_len, "0 A\n1 New\n2 C\n5 Last\n", 21);
    CHECK(maildir_keywords_parse(&kw, "", 0, NULL) == 0);
    CHECK(kw.used == 0);
}

int
main(void)
{
    test_dovecot_file();
    test_add_and_limit();
    test_damaged();
    UNIT_DONE();
}
