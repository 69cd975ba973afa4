/*
 * tests/unit/test_mta_sts.c - the MTA-STS TXT record, policy file and MX
 * matching (proto/smtp/mta_sts), with RFC 8461's own examples (sections
 * 3.1, 3.2 and 4.1) and what must be refused: other versions and modes,
 * max_age out of range, missing fields, fields twice, bad names, and
 * every bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/mta_sts.h"
#include "tests/unit/unit.h"

static int
parse(const char *text, struct mta_sts_policy *policy, char *err, size_t err_bytes)
{
    return mta_sts_policy_parse(text, strlen(text), policy, err, err_bytes);
}

static void
test_txt(void)
{
    char id[MTA_STS_ID_BYTES];
    /* RFC 8461 3.1's example. */
    const char *example = "v=STSv1; id=20160831085700Z;";
    CHECK(mta_sts_txt_parse(example, strlen(example), id) == 0);
    CHECK_STR(id, "20160831085700Z");
    const char *no_trailing = "v=STSv1;id=abc";
    CHECK(mta_sts_txt_parse(no_trailing, strlen(no_trailing), id) == 0);
    CHECK_STR(id, "abc");
    const char *extra = "v=STSv1; foo=bar; id=X1 ;";
    CHECK(mta_sts_txt_parse(extra, strlen(extra), id) == 0);
    CHECK_STR(id, "X1");
    /* Not STSv1 first, no id, bad ids, two ids. */
    static const char *const bad[] = {
        "", "v=STSv2; id=1;", "id=1; v=STSv1;", " v=STSv1; id=1;", "v=STSv1;", "v=STSv1; id=;",
        "v=STSv1; id=a-b;", "v=STSv1; id=123456789012345678901234567890123;",
        "v=STSv1; id=1; id=2;", "v=STSv1 id=1", "v=STSv1; id",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(mta_sts_txt_parse(bad[i], strlen(bad[i]), id) == -EINVAL);
    }
    const char *longest = "v=STSv1; id=12345678901234567890123456789012;";
    CHECK(mta_sts_txt_parse(longest, strlen(longest), id) == 0);
    CHECK(strlen(id) == 32);
}

static void
test_policy(void)
{
    struct mta_sts_policy policy;
    char err[MTA_STS_ERROR_BYTES];
    /* RFC 8461 3.2's example, CRLF. */
    CHECK(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
                &policy, err, sizeof(err)) == 0);
    CHECK(policy.mode == MTA_STS_MODE_ENFORCE);
    CHECK(policy.max_age == 604800);
    CHECK(policy.mx_count == 3);
    CHECK_STR(policy.mx[1], "*.example.net");
    /* LF, blanks around values, unknown fields, upper-case names, no
     * final line end. */
    CHECK(parse("  version : STSv1 \nMode:testing\nfoo: bar\nMX: Mail.Example.ORG\nmax_age:0",
                &policy, err, sizeof(err)) == 0);
    CHECK(policy.mode == MTA_STS_MODE_TESTING && policy.max_age == 0);
    CHECK(policy.mx_count == 1);
    CHECK_STR(policy.mx[0], "mail.example.org");
    /* mode none needs no mx. */
    CHECK(parse("version: STSv1\nmode: none\nmax_age: 86400\n", &policy, err, sizeof(err)) == 0);
    CHECK(policy.mode == MTA_STS_MODE_NONE && policy.mx_count == 0);
    CHECK(parse("version: STSv1\nmode: enforce\nmax_age: 31557600\nmx: a.example\n", &policy, err,
                sizeof(err)) == 0);

    struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"mode: enforce\nmax_age: 1\nmx: a.example\n", "without version"},
        {"version: STSv2\nmode: enforce\nmax_age: 1\nmx: a.example\n", "line 1: version"},
        {"version: STSv1\nmax_age: 1\nmx: a.example\n", "without mode"},
        {"version: STSv1\nmode: enforce\nmx: a.example\n", "without max_age"},
        {"version: STSv1\nmode: enforce\nmax_age: 1\n", "without mx"},
        {"version: STSv1\nmode: Enforce\nmax_age: 1\nmx: a.example\n", "line 2: mode"},
        {"version: STSv1\nmode: enforce\nmax_age: 31557601\nmx: a.example\n", "line 3: max_age"},
        {"version: STSv1\nmode: enforce\nmax_age: -1\nmx: a.example\n", "line 3: max_age"},
        {"version: STSv1\nmode: enforce\nmax_age: 12345678901\nmx: a.example\n", "line 3"},
        {"version: STSv1\nmode: enforce\nmode: testing\nmax_age: 1\nmx: a\n", "line 3: mode"},
        {"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a..example\n", "line 4: mx"},
        {"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.*.example\n", "line 4: mx"},
        {"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *example.com\n", "line 4: mx"},
        {"version: STSv1\nmode: enforce\nmax_age: 1\nmx: \n", "line 4: mx"},
        {"version: STSv1\nthis line has no colon\n", "line 2: not"},
        {"<html><body>404</body></html>\n", "line 1"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse(bad[i].text, &policy, err, sizeof(err)) == -EINVAL);
        if (strstr(err, bad[i].why) == NULL) {
            fprintf(stderr, "case %zu: error \"%s\", want \"%s\"\n", i, err, bad[i].why);
            CHECK(false);
        }
    }

    /* Bounds: MTA_STS_MX_MAX patterns, then one more; the size. */
    static char text[MTA_STS_POLICY_BYTES_MAX + 64];
    size_t at = (size_t)snprintf(text, sizeof(text), "version: STSv1\nmode: enforce\nmax_age: 1\n");
    for (unsigned i = 0; i < MTA_STS_MX_MAX; i++) {
        at += (size_t)snprintf(text + at, sizeof(text) - at, "mx: mx%u.example\n", i);
    }
    CHECK(parse(text, &policy, err, sizeof(err)) == 0);
    CHECK(policy.mx_count == MTA_STS_MX_MAX);
    (void)snprintf(text + at, sizeof(text) - at, "mx: one-more.example\n");
    CHECK(parse(text, &policy, err, sizeof(err)) == -E2BIG);
    memset(text, '\n', sizeof(text));
    CHECK(mta_sts_policy_parse(text, MTA_STS_POLICY_BYTES_MAX + 1, &policy, err, sizeof(err)) ==
          -E2BIG);
    char label[80];
    memset(label, 'a', 64);
    label[64] = '\0';
    char line[200];
    (void)snprintf(line, sizeof(line), "version: STSv1\nmode: enforce\nmax_age: 1\nmx: %s.example\n",
                   label);
    CHECK(parse(line, &policy, err, sizeof(err)) == -EINVAL); /* a 64-octet label */
    label[63] = '\0';
    (void)snprintf(line, sizeof(line), "version: STSv1\nmode: enforce\nmax_age: 1\nmx: %s.example\n",
                   label);
    CHECK(parse(line, &policy, err, sizeof(err)) == 0);
}

static void
test_mx_match(void)
{
    struct mta_sts_policy policy;
    char err[MTA_STS_ERROR_BYTES];
    CHECK(parse("version: STSv1\nmode: enforce\nmax_age: 1\nmx: mail.example.com\n"
                "mx: *.example.net\n",
                &policy, err, sizeof(err)) == 0);
    /* RFC 8461 4.1: "*.example.com" allows "mail.example.com" but not
     * "example.com" or "foo.bar.example.com". */
    CHECK(mta_sts_mx_matches(&policy, "mail.example.com"));
    CHECK(mta_sts_mx_matches(&policy, "MAIL.Example.COM."));
    CHECK(!mta_sts_mx_matches(&policy, "mail2.example.com"));
    CHECK(mta_sts_mx_matches(&policy, "mx1.example.net"));
    CHECK(!mta_sts_mx_matches(&policy, "example.net"));
    CHECK(!mta_sts_mx_matches(&policy, "foo.bar.example.net"));
    CHECK(!mta_sts_mx_matches(&policy, ".example.net"));
    CHECK(!mta_sts_mx_matches(&policy, "xexample.net"));
    CHECK(!mta_sts_mx_matches(&policy, ""));
    CHECK(!mta_sts_mx_matches(&policy, "."));
}

int
main(void)
{
    test_txt();
    test_policy();
    test_mx_match();
    UNIT_DONE();
}
