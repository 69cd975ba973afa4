/*
 * tests/unit/test_maildir_name.c - Maildir file names (store/maildir_name.c).
 *
 * A table of names (Dovecot's, toasterd's, junk an operator may drop in)
 * with the parse result expected for each; the file names Dovecot 2.3.19.1
 * wrote in tests/unit/fixtures/dovecot/filenames.txt must parse and
 * rebuild to the same bytes; building puts flags in ASCII order, once, and
 * refuses what would not be a valid name (length at max - 1, max, max + 1).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/maildir_name.h"
#include "tests/unit/fixtures.h"
#include "tests/unit/unit.h"

struct name_case {
    const char *name;
    int         rc;
    const char *base;
    int         has_size; /* -1: don't care */
    uint64_t    size;
    int         has_vsize;
    uint64_t    vsize;
    uint32_t    flags;
    uint32_t    keywords;
    bool        has_flags;
    bool        is_info_odd;
};

#define KW(c) (UINT32_C(1) << ((c) - 'a'))

static const struct name_case cases[] = {
    { "1795841654.M500375P31461.vm,S=30,W=34:2,FS", 0, "1795841654.M500375P31461.vm,S=30,W=34",
      1, 30, 1, 34, MAILDIR_FLAG_FLAGGED | MAILDIR_FLAG_SEEN, 0, true, false },
    { "1795841654.M524040P31465.vm,S=30,W=34:2,DRTd", 0,
      "1795841654.M524040P31465.vm,S=30,W=34", 1, 30, 1, 34,
      MAILDIR_FLAG_DRAFT | MAILDIR_FLAG_REPLIED | MAILDIR_FLAG_TRASHED, KW('d'), true, false },
    { "1795841700.M1P2Q3.toaster,S=38,W=38", 0, "1795841700.M1P2Q3.toaster,S=38,W=38", 1, 38, 1,
      38, 0, 0, false, false },
    { "1795841701.plainname.host:2,S", 0, "1795841701.plainname.host", 0, 0, 0, 0,
      MAILDIR_FLAG_SEEN, 0, true, false },
    { "1.2.h:2,", 0, "1.2.h", 0, 0, 0, 0, 0, 0, true, false },
    { "1.2.h:2,PSabcz", 0, "1.2.h", 0, 0, 0, 0, MAILDIR_FLAG_PASSED | MAILDIR_FLAG_SEEN,
      KW('a') | KW('b') | KW('c') | KW('z'), true, false },
    { "1.2.h:2,SS", 0, "1.2.h", 0, 0, 0, 0, MAILDIR_FLAG_SEEN, 0, true, false },
    { "1.2.h:2,S1-", 0, "1.2.h", 0, 0, 0, 0, MAILDIR_FLAG_SEEN, 0, true, true },
    { "1.2.h:1,xyz", 0, "1.2.h", 0, 0, 0, 0, 0, 0, false, true },
    { "1.2.h:", 0, "1.2.h", 0, 0, 0, 0, 0, 0, false, false },
    { "1.2.h,W=10,S=9", 0, "1.2.h,W=10,S=9", 1, 9, 1, 10, 0, 0, false, false },
    { "1.2.h,S=12x,W=", 0, "1.2.h,S=12x,W=", 0, 0, 0, 0, 0, 0, false, false },
    { "1.2.h,S=99999999999999999999", 0, "1.2.h,S=99999999999999999999", 0, 0, 0, 0, 0, 0,
      false, false },
    { "1.2.h,S=18446744073709551615", 0, "1.2.h,S=18446744073709551615", 1,
      UINT64_C(18446744073709551615), 0, 0, 0, 0, false, false },
    { "nodots", 0, "nodots", 0, 0, 0, 0, 0, 0, false, false },
    { "", -ENOENT, NULL, 0, 0, 0, 0, 0, 0, false, false },
    { ".", -ENOENT, NULL, 0, 0, 0, 0, 0, 0, false, false },
    { "..", -ENOENT, NULL, 0, 0, 0, 0, 0, 0, false, false },
    { ".hidden:2,S", -ENOENT, NULL, 0, 0, 0, 0, 0, 0, false, false },
    { ":2,S", -EINVAL, NULL, 0, 0, 0, 0, 0, 0, false, false },
    { "a/b", -EINVAL, NULL, 0, 0, 0, 0, 0, 0, false, false },
};

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct name_case *c = &cases[i];
        struct maildir_name n;
        int rc = maildir_name_parse(c->name, strlen(c->name), &n);
        if (rc != c->rc) {
            fprintf(stderr, "case %zu (%s): rc %d want %d\n", i, c->name, rc, c->rc);
        }
        CHECK(rc == c->rc);
        if (rc != 0) {
            continue;
        }
        CHECK_BYTES(n.base.ptr, n.base.len, c->base, strlen(c->base));
        CHECK(n.has_size == (c->has_size == 1));
        if (n.has_size) {
            CHECK(n.size == c->size);
        }
        CHECK(n.has_vsize == (c->has_vsize == 1));
        if (n.has_vsize) {
            CHECK(n.vsize == c->vsize);
        }
        CHECK(n.flags == c->flags);
        CHECK(n.keywords == c->keywords);
        CHECK(n.has_flags == c->has_flags);
        CHECK(n.is_info_odd == c->is_info_odd);
    }
}

static void
test_junk_bytes(void)
{
    struct maildir_name n;
    CHECK(maildir_name_parse("a\0b", 3, &n) == -EINVAL);
    CHECK(maildir_name_parse(NULL, 0, &n) == -ENOENT);
    char high[] = { 'a', (char)0xff, ':', '2', ',', (char)0x80, 'S' };
    CHECK(maildir_name_parse(high, sizeof(high), &n) == 0);
    CHECK(n.flags == MAILDIR_FLAG_SEEN);
    CHECK(n.is_info_odd);

    /* Length at max - 1, max, max + 1. */
    char name[MAILDIR_NAME_BYTES_MAX + 2];
    memset(name, 'x', sizeof(name));
    CHECK(maildir_name_parse(name, MAILDIR_NAME_BYTES_MAX - 1, &n) == 0);
    CHECK(maildir_name_parse(name, MAILDIR_NAME_BYTES_MAX, &n) == 0);
    CHECK(n.base.len == MAILDIR_NAME_BYTES_MAX);
    CHECK(maildir_name_parse(name, MAILDIR_NAME_BYTES_MAX + 1, &n) == -EINVAL);
}

static void
test_build(void)
{
    char out[MAILDIR_NAME_BYTES_MAX + 1];
    size_t len = 0;
    struct span base = SPAN_LITERAL("1795841700.M1P2Q3.toaster,S=38,W=38");
    CHECK(maildir_name_build(base, 0, 0, out, sizeof(out), &len) == 0);
    CHECK_STR(out, "1795841700.M1P2Q3.toaster,S=38,W=38:2,");
    CHECK(len == strlen(out));
    CHECK(maildir_name_build(base,
                             MAILDIR_FLAG_TRASHED | MAILDIR_FLAG_SEEN | MAILDIR_FLAG_REPLIED |
                                 MAILDIR_FLAG_PASSED | MAILDIR_FLAG_FLAGGED | MAILDIR_FLAG_DRAFT,
                             KW('z') | KW('a') | KW('m'), out, sizeof(out), &len) == 0);
    CHECK_STR(out, "1795841700.M1P2Q3.toaster,S=38,W=38:2,DFPRSTamz");

    /* Unknown upper-case flags survive a parse + build. */
    struct maildir_name n;
    CHECK(maildir_name_parse("b:2,SaXc", 8, &n) == 0);
    CHECK(maildir_name_build(n.base, n.flags, n.keywords, out, sizeof(out), &len) == 0);
    CHECK_STR(out, "b:2,SXac");

    CHECK(maildir_name_build(SPAN_LITERAL("a:b"), 0, 0, out, sizeof(out), &len) == -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL("a/b"), 0, 0, out, sizeof(out), &len) == -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL(".a"), 0, 0, out, sizeof(out), &len) == -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL(""), 0, 0, out, sizeof(out), &len) == -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL("a"), UINT32_C(1) << 26, 0, out, sizeof(out), &len) ==
          -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL("a"), 0, UINT32_C(1) << 26, out, sizeof(out), &len) ==
          -EINVAL);
    CHECK(maildir_name_build(SPAN_LITERAL("abc"), MAILDIR_FLAG_SEEN, 0, out, 7, &len) ==
          -ENAMETOOLONG);
    CHECK(maildir_name_build(SPAN_LITERAL("abc"), MAILDIR_FLAG_SEEN, 0, out, 8, &len) == 0);

    /* Total length at max - 1, max, max + 1: base + ":2," + one letter. */
    char big[MAILDIR_NAME_BYTES_MAX];
    memset(big, 'y', sizeof(big));
    size_t base_max = MAILDIR_NAME_BYTES_MAX - 4;
    CHECK(maildir_name_build(span_make(big, base_max - 1), MAILDIR_FLAG_SEEN, 0, out, sizeof(out),
                             &len) == 0);
    CHECK(len == MAILDIR_NAME_BYTES_MAX - 1);
    CHECK(maildir_name_build(span_make(big, base_max), MAILDIR_FLAG_SEEN, 0, out, sizeof(out),
                             &len) == 0);
    CHECK(len == MAILDIR_NAME_BYTES_MAX);
    CHECK(maildir_name_build(span_make(big, base_max + 1), MAILDIR_FLAG_SEEN, 0, out, sizeof(out),
                             &len) == -ENAMETOOLONG);
}

/* Every name Dovecot wrote parses, and if it has flags, rebuilds to itself
 * (Dovecot writes flags in the same canonical order). */
static void
test_dovecot_names(void)
{
    static char buf[FIXTURE_BYTES_MAX];
    size_t len = FIXTURE_READ("dovecot/filenames.txt", buf);
    size_t lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        lines++;
        struct maildir_name n;
        CHECK(maildir_name_parse(line, strlen(line), &n) == 0);
        if (n.has_flags) {
            char out[MAILDIR_NAME_BYTES_MAX + 1];
            size_t out_len = 0;
            CHECK(maildir_name_build(n.base, n.flags, n.keywords, out, sizeof(out), &out_len) == 0);
            CHECK_STR(out, line);
        }
    }
    CHECK(len > 0);
    CHECK(lines == 7);
}

int
main(void)
{
    test_cases();
    test_junk_bytes();
    test_build();
    test_dovecot_names();
    UNIT_DONE();
}
