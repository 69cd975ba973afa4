/*
 * tests/unit/test_spf_record.c - the SPF record reader (RFC 7208 4.5,
 * 4.6, 5, 6 and the ABNF of section 12): which TXT strings are SPF
 * records, one record among several, and a table of records that must
 * parse (with the terms they give) or must be syntax errors: unknown
 * mechanisms, CIDR lengths out of range or with leading zeros, bad
 * addresses, domain-specs without a valid top label, redirect= or exp=
 * twice, and the record length bound at max and max + 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/spf.h"
#include "filters/spf_record.h"
#include "tests/unit/unit.h"

int main(void);

static int
check_record(const char *text, struct spf_record_summary *summary)
{
    return spf_record_check(text, strlen(text), summary);
}

static void
test_is_spf(void)
{
    CHECK(spf_record_is_spf("v=spf1", 6));
    CHECK(spf_record_is_spf("v=spf1 -all", 11));
    CHECK(spf_record_is_spf("V=SPF1 -all", 11));
    CHECK(!spf_record_is_spf("v=spf10 -all", 12));
    CHECK(!spf_record_is_spf("v=spf1-all", 10));
    CHECK(!spf_record_is_spf(" v=spf1", 7));
    CHECK(!spf_record_is_spf("spf2.0/pra -all", 15));
    CHECK(!spf_record_is_spf("v=spf", 5));

    struct dns_record records[3] = {
        {.txt = {.text = "google-site-verification=x", .len = 26}},
        {.txt = {.text = "v=spf1 -all", .len = 11}},
        {.txt = {.text = "v=spf1 +all", .len = 11}},
    };
    struct dns_answer answer = {
        .type = DNS_TYPE_TXT, .status = DNS_STATUS_OK, .count = 2, .records = records};
    const char *text = NULL;
    size_t len = 0;
    CHECK(spf_record_select(&answer, &text, &len) == 0);
    CHECK(len == 11 && memcmp(text, "v=spf1 -all", 11) == 0);
    answer.count = 3;
    CHECK(spf_record_select(&answer, &text, &len) == -EEXIST);
    answer.count = 1;
    CHECK(spf_record_select(&answer, &text, &len) == -ENOENT);
    answer.status = DNS_STATUS_NODATA;
    answer.count = 0;
    CHECK(spf_record_select(&answer, &text, &len) == -ENOENT);
}

static const char *const good[] = {
    "v=spf1",
    "v=spf1 ",
    "v=spf1  -all  ",
    "v=spf1 +all",
    "v=spf1 a mx ptr -all",
    "v=spf1 a/24 mx/24//64 a//64 ?all",
    "v=spf1 a:example.com/0 mx:example.com/32//128 ~all",
    "v=spf1 ip4:192.0.2.0/24 ip4:0.0.0.0/0 ip4:255.255.255.255",
    "v=spf1 ip6:2001:db8::/32 ip6:::1 ip6:::ffff:192.0.2.1/128 ip6:::/0",
    "v=spf1 include:_spf.example.com exists:%{ir}.%{l1r+}.%{d} -all",
    "v=spf1 redirect=_spf.example.com",
    "v=spf1 -all exp=explain._spf.%{d}",
    "v=spf1 a:foo-bar.example.com a:example.com. a:x.y-1 a:%{d}",
    "v=spf1 foo=bar moo.cow-far_out=man:dog/cat",
    "v=spf1 ptr:example.com -ALL MX A IP4:1.2.3.4 Include:example.com",
    "v=spf1 a:%{l}.%%.%_.%-.example.com",
    "v=spf1 exists:%{i}._spf.%{d2}",
    "v=spf1 unknown-modifier=",
};

static const char *const bad[] = {
    "v=spf1 foo",             /* unknown mechanism */
    "v=spf1 -foo:bar",        /* unknown mechanism */
    "v=spf1 all:example.com", /* all takes nothing */
    "v=spf1 +all/24",
    "v=spf1 include", /* needs a domain-spec */
    "v=spf1 include:",
    "v=spf1 exists",
    "v=spf1 ip4",
    "v=spf1 ip4:",
    "v=spf1 ip4:192.0.2.0/33",  /* CIDR out of range */
    "v=spf1 ip4:192.0.2.0/024", /* leading zero */
    "v=spf1 ip4:192.0.2.0/",
    "v=spf1 ip4:192.0.2",
    "v=spf1 ip4:192.0.2.256",
    "v=spf1 ip4:192.0.2.01",
    "v=spf1 ip4:2001:db8::1",
    "v=spf1 ip6:192.0.2.1",
    "v=spf1 ip6:2001:db8::/129",
    "v=spf1 ip6:2001:db8::/",
    "v=spf1 a/33",
    "v=spf1 a//129",
    "v=spf1 mx/24//",
    "v=spf1 a:museum",      /* domain-end needs "." toplabel */
    "v=spf1 a:example.123", /* a top label of digits only */
    "v=spf1 a:example.-com",
    "v=spf1 a:example.com-",
    "v=spf1 a:",
    "v=spf1 a:example.com/abc",
    "v=spf1 include:example.com/24",
    "v=spf1 ptr:",
    "v=spf1 exists:%{x}.example.com", /* bad macro letter */
    "v=spf1 exists:%{d0}.example.com",
    "v=spf1 exists:%{c}.example.com", /* c only in exp text */
    "v=spf1 exists:%.example.com",
    "v=spf1 redirect=a.example.com redirect=b.example.com",
    "v=spf1 exp=a.example.com exp=b.example.com",
    "v=spf1 redirect=",
    "v=spf1 redirect=museum",
    "v=spf1 foo=%", /* unknown modifiers are still macro-strings */
    "v=spf1 =foo",
    "v=spf1 -",
    ("v=spf1 a:ex\x01" /* split: "\x01a" would be one escape */
     "ample.com"),
    "v=spf1 \x80",
};

static void
test_table(void)
{
    struct spf_record_summary summary;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int rc = check_record(good[i], &summary);
        CHECK(rc == 0);
        if (rc != 0) {
            fprintf(stderr, "  good record refused: %s\n", good[i]);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = check_record(bad[i], &summary);
        CHECK(rc == -EINVAL);
        if (rc != -EINVAL) {
            fprintf(stderr, "  bad record accepted: %s\n", bad[i]);
        }
        CHECK(summary.error_pos >= 6 && summary.error_pos <= strlen(bad[i]));
    }
}

static void
test_terms(void)
{
    const char *text = "v=spf1 -a:example.com/24//64 ~mx ?ip4:192.0.2.128/28 "
                       "ip6:2001:DB8::/32 include:x.example.org redirect=r.example.org "
                       "exp=e.example.org x-y=z ptr exists:%{d} +all";
    struct spf_record_summary summary;
    CHECK(check_record(text, &summary) == 0);
    CHECK(summary.term_count == 11);
    CHECK(summary.redirect_index == 5);
    CHECK(summary.exp_index == 6);
    CHECK(summary.has_all);
    struct spf_record_cursor cursor;
    spf_record_begin(&cursor, text, strlen(text));
    struct spf_term t;
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_A && t.qualifier == '-' && t.cidr4 == 24 && t.cidr6 == 64);
    CHECK(t.domain_spec_len == 11 && memcmp(t.domain_spec, "example.com", 11) == 0);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_MX && t.qualifier == '~' && t.cidr4 == 32 && t.cidr6 == 128);
    CHECK(t.domain_spec == NULL);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_IP4 && t.qualifier == '?' && t.cidr4 == 28);
    CHECK(t.network[0] == 192 && t.network[3] == 128);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_IP6 && t.cidr6 == 32 && t.network[0] == 0x20 && t.network[3] == 0xb8);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_INCLUDE && t.qualifier == '+');
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_REDIRECT && t.domain_spec_len == 13);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_EXP);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_UNKNOWN_MODIFIER);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_PTR && t.domain_spec == NULL);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_EXISTS);
    CHECK(spf_record_next(&cursor, &t) == 1);
    CHECK(t.kind == SPF_TERM_ALL && t.qualifier == '+' && t.text_len == 4);
    CHECK(spf_record_next(&cursor, &t) == 0);
    CHECK(spf_record_next(&cursor, &t) == 0);
}

static void
test_length_bound(void)
{
    char *text = malloc(SPF_RECORD_BYTES_MAX + 2);
    CHECK(text != NULL);
    memcpy(text, "v=spf1", 6);
    memset(text + 6, ' ', SPF_RECORD_BYTES_MAX + 1 - 6);
    struct spf_record_summary summary;
    CHECK(spf_record_check(text, SPF_RECORD_BYTES_MAX - 1, &summary) == 0);
    CHECK(spf_record_check(text, SPF_RECORD_BYTES_MAX, &summary) == 0);
    CHECK(spf_record_check(text, SPF_RECORD_BYTES_MAX + 1, &summary) == -E2BIG);
    free(text);
}

int
main(void)
{
    test_is_spf();
    test_table();
    test_terms();
    test_length_bound();
    UNIT_DONE();
}
