/*
 * tests/unit/test_sieve_date.c - RFC 5322 date-times and RFC 5260 date
 * parts (filters/sieve_date). The dates of RFC 5322 appendix A (plain,
 * folded with comments, obsolete forms), the obsolete zones and 2/3-digit
 * years of section 4.3, the values RFC 5260's examples compare against,
 * broken dates (impossible days, bad zones, garbage, unclosed and too
 * deep comments), every bound at max - 1 / max / max + 1, and the calendar
 * arithmetic checked against gmtime_r() (TZ-independent) over 1900..2200.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filters/sieve_date.h"
#include "tests/unit/unit.h"

int main(void);

static int
parse(const char *text, struct sieve_datetime *out)
{
    return sieve_date_parse(text, strlen(text), out);
}

/* The part as a C string ("<error>" on failure). */
static const char *
part(const struct sieve_datetime *when, const char *name)
{
    static char out[SIEVE_DATE_PART_BYTES];
    int n = sieve_date_part(when, name, strlen(name), out);
    if (n < 0) {
        return "<error>";
    }
    CHECK((size_t)n == strlen(out));
    return out;
}

static void
test_rfc5322_appendix_a(void)
{
    struct sieve_datetime when;

    /* A.1.1 */
    CHECK(parse("Fri, 21 Nov 1997 09:55:06 -0600", &when) == 0);
    CHECK(when.unix_seconds == 880127706);
    CHECK(when.zone_minutes == -360);
    CHECK_STR(part(&when, "year"), "1997");
    CHECK_STR(part(&when, "month"), "11");
    CHECK_STR(part(&when, "day"), "21");
    CHECK_STR(part(&when, "date"), "1997-11-21");
    CHECK_STR(part(&when, "julian"), "50773");
    CHECK_STR(part(&when, "hour"), "09");
    CHECK_STR(part(&when, "minute"), "55");
    CHECK_STR(part(&when, "second"), "06");
    CHECK_STR(part(&when, "time"), "09:55:06");
    CHECK_STR(part(&when, "iso8601"), "1997-11-21T09:55:06-06:00");
    CHECK_STR(part(&when, "std11"), "Fri, 21 Nov 1997 09:55:06 -0600");
    CHECK_STR(part(&when, "zone"), "-0600");
    CHECK_STR(part(&when, "weekday"), "5");
    CHECK_STR(part(&when, "WeekDay"), "5"); /* names are case-insensitive */

    /* A.1.2 */
    CHECK(parse("Tue, 1 Jul 2003 10:52:37 +0200", &when) == 0);
    CHECK(when.unix_seconds == 1057049557);
    CHECK(when.zone_minutes == 120);
    CHECK_STR(part(&when, "std11"), "Tue, 01 Jul 2003 10:52:37 +0200");

    /* A.5: folding white space and a comment everywhere. Before 1970. */
    CHECK(parse("Thu,\r\n      13\r\n        Feb\r\n          1969\r\n      23:32\r\n"
                "               -0330 (Newfoundland Time)",
                &when) == 0);
    CHECK(when.unix_seconds == -27723480);
    CHECK(when.zone_minutes == -210);
    CHECK_STR(part(&when, "iso8601"), "1969-02-13T23:32:00-03:30");
    CHECK_STR(part(&when, "julian"), "40265");
    CHECK_STR(part(&when, "weekday"), "4");

    /* A.6.2: obsolete 2-digit year and alphabetic zone. */
    CHECK(parse("21 Nov 97 09:55:06 GMT", &when) == 0);
    CHECK(when.unix_seconds == 880106106);
    CHECK(when.zone_minutes == 0);
    CHECK_STR(part(&when, "zone"), "+0000");
    CHECK_STR(part(&when, "iso8601"), "1997-11-21T09:55:06Z");

    /* A.6.3: comments and white space inside the time. */
    CHECK(parse("Fri, 21 Nov 1997 09(comment):   55  :  06 -0600", &when) == 0);
    CHECK(when.unix_seconds == 880127706);
}

static void
test_obsolete(void)
{
    struct sieve_datetime when;

    CHECK(parse("1 Jan 49 00:00 Z", &when) == 0); /* 2-digit < 50: 20xx; military: -0000 */
    CHECK(when.unix_seconds == 2493072000);
    CHECK(when.zone_minutes == 0);
    CHECK(parse("1 Jan 50 00:00 a", &when) == 0); /* >= 50: 19xx; lower-case letter */
    CHECK(when.unix_seconds == -631152000);
    CHECK(parse("1 Jan 103 00:00:00 UT", &when) == 0); /* 3 digits: + 1900 */
    CHECK(when.unix_seconds == 1041379200);
    CHECK(parse("Wed, 1 Jan 2003 00:00:00 CET", &when) == 0); /* unknown zone: -0000 */
    CHECK(when.unix_seconds == 1041379200);
    CHECK(parse("wed, 01 jan 2003 00:00:00 gmt", &when) == 0); /* any case */
    CHECK(when.unix_seconds == 1041379200);

    static const struct {
        const char *zone;
        int32_t minutes;
    } zones[] = {{"EST", -300}, {"EDT", -240}, {"CST", -360}, {"CDT", -300},
                 {"MST", -420}, {"MDT", -360}, {"PST", -480}, {"PDT", -420}};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        char text[64];
        (void)snprintf(text, sizeof(text), "1 Jan 2003 00:00:00 %s", zones[i].zone);
        CHECK(parse(text, &when) == 0);
        CHECK(when.zone_minutes == zones[i].minutes);
        CHECK(when.unix_seconds == 1041379200 - (int64_t)zones[i].minutes * 60);
    }

    /* A leap second reads as :59. */
    CHECK(parse("31 Dec 2016 23:59:60 +0000", &when) == 0);
    CHECK_STR(part(&when, "time"), "23:59:59");
    /* Leap days. */
    CHECK(parse("29 Feb 2000 00:00 +0000", &when) == 0);
    CHECK(parse("29 Feb 2004 00:00 +0000", &when) == 0);
    CHECK(parse("29 Feb 1900 00:00 +0000", &when) == -EINVAL);
    CHECK(parse("29 Feb 2003 00:00 +0000", &when) == -EINVAL);
}

static void
test_broken(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "Fri, 21 Nov 1997 09:55:06",          /* no zone */
        "Fri 21 Nov 1997 09:55:06 +0000",     /* no comma */
        "Fry, 21 Nov 1997 09:55:06 +0000",    /* no such day */
        "Friday, 21 Nov 1997 09:55:06 +0000", /* not the short name */
        "Fri, 21 Foo 1997 09:55:06 +0000",
        "Fri, 21 November 1997 09:55:06 +0000",
        "Fri, 31 Nov 1997 09:55:06 +0000",
        "Fri, 0 Nov 1997 09:55:06 +0000",
        "Fri, 100 Nov 1997 09:55:06 +0000",
        "Fri, 21 Nov 1899 09:55:06 +0000", /* RFC 5322: 1900 or later */
        "Fri, 21 Nov 7 09:55:06 +0000",
        "Fri, 21 Nov 19970 09:55:06 +0000",
        "Fri, 21 Nov 1997 24:00:00 +0000",
        "Fri, 21 Nov 1997 23:60:00 +0000",
        "Fri, 21 Nov 1997 23:59:61 +0000",
        "Fri, 21 Nov 1997 09.55.06 +0000",
        "Fri, 21 Nov 1997 09: +0000",
        "Fri, 21 Nov 1997 09:55:06 +2400",
        "Fri, 21 Nov 1997 09:55:06 +0060",
        "Fri, 21 Nov 1997 09:55:06 +060",
        "Fri, 21 Nov 1997 09:55:06 +06000",
        "Fri, 21 Nov 1997 09:55:06 ++0600",
        "Fri, 21 Nov 1997 09:55:06 ABCDEF", /* six letters: not a zone */
        "Fri, 21 Nov 1997 09:55:06 +0000 trailing",
        "Fri, 21 Nov 1997 09:55:06 +0000 (unclosed",
        "Fri, 21 Nov 1997 09:55:06 +0000 )",
        "(Fri, 21 Nov 1997 09:55:06 +0000",
        "Fri, 21 Nov 1997 09:55:06 +0000 \\",
    };
    struct sieve_datetime when = {.unix_seconds = 7, .zone_minutes = 7};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], &when);
        if (rc != -EINVAL) {
            (void)fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        CHECK(rc == -EINVAL);
    }
    CHECK(when.unix_seconds == 7); /* untouched on failure */
    /* A NUL inside the text is not white space. */
    CHECK(sieve_date_parse("1 Jan 2003 00:00 +0000\0", 23, &when) == -EINVAL);
    CHECK(sieve_date_parse(NULL, 0, &when) == -EINVAL);
}

/* Comments nest up to 32 deep: 31 and 32 pass, 33 fails. */
static void
test_comment_depth(void)
{
    for (size_t depth = 31; depth <= 33; depth++) {
        char text[256];
        size_t n = (size_t)snprintf(text, sizeof(text), "1 Jan 2003 00:00 +0000 ");
        for (size_t i = 0; i < depth; i++) {
            text[n++] = '(';
        }
        text[n++] = 'x';
        for (size_t i = 0; i < depth; i++) {
            text[n++] = ')';
        }
        struct sieve_datetime when;
        CHECK(sieve_date_parse(text, n, &when) == (depth <= 32 ? 0 : -EINVAL));
    }
    /* Quoted pairs inside a comment, an escaped parenthesis among them. */
    struct sieve_datetime when;
    CHECK(parse("1 Jan 2003 00:00 +0000 (a \\) b (c) \\( d)", &when) == 0);
}

static void
test_field(void)
{
    struct sieve_datetime when;
    const char *received = "from a.example by b.example with ESMTP id 1; "
                           "Tue, 1 Jul 2003 10:52:37 +0200";
    CHECK(sieve_date_parse_field(received, strlen(received), &when) == 0);
    CHECK(when.unix_seconds == 1057049557);
    const char *plain = "Tue, 1 Jul 2003 10:52:37 +0200";
    CHECK(sieve_date_parse_field(plain, strlen(plain), &when) == 0);
    CHECK(sieve_date_parse_field("x;", 2, &when) == -EINVAL);
}

static void
test_zone_parse(void)
{
    static const struct {
        const char *text;
        int rc;
        int32_t minutes;
    } cases[] = {
        {"+0000", 0, 0},     {"-0000", 0, 0},       {"+0130", 0, 90},     {"-0700", 0, -420},
        {"+2358", 0, 1438},  {"+2359", 0, 1439},    {"-2359", 0, -1439},  {"+2400", -EINVAL, 0},
        {"+0059", 0, 59},    {"+0060", -EINVAL, 0}, {"0000", -EINVAL, 0}, {"+000", -EINVAL, 0},
        {"+00000", -EINVAL, 0}, {"+00a0", -EINVAL, 0}, {"", -EINVAL, 0},  {"Z", -EINVAL, 0},
        {" +0000", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int32_t minutes = 12345;
        int rc = sieve_zone_parse(cases[i].text, strlen(cases[i].text), &minutes);
        CHECK(rc == cases[i].rc);
        if (rc == 0) {
            CHECK(minutes == cases[i].minutes);
        } else {
            CHECK(minutes == 12345);
        }
    }
}

/* Moving an instant between zones, as ":zone" and ":originalzone" do. */
static void
test_zones(void)
{
    struct sieve_datetime when;
    CHECK(parse("Fri, 21 Nov 1997 09:55:06 -0600", &when) == 0);
    when.zone_minutes = 0;
    CHECK_STR(part(&when, "std11"), "Fri, 21 Nov 1997 15:55:06 +0000");
    when.zone_minutes = 9 * 60;
    CHECK_STR(part(&when, "iso8601"), "1997-11-22T00:55:06+09:00");
    CHECK_STR(part(&when, "weekday"), "6");
    CHECK_STR(part(&when, "julian"), "50774");
    when.zone_minutes = -1439;
    CHECK_STR(part(&when, "std11"), "Thu, 20 Nov 1997 15:56:06 -2359");
    when.zone_minutes = 1439;
    CHECK_STR(part(&when, "zone"), "+2359");
    when.zone_minutes = 1440;
    CHECK_STR(part(&when, "zone"), "<error>");
    when.zone_minutes = -1440;
    CHECK_STR(part(&when, "hour"), "<error>");
}

/* RFC 5260 4.4 and 5.1: the values the examples compare with. */
static void
test_rfc5260_examples(void)
{
    struct sieve_datetime when;
    /* "date :value "ge" :originalzone "date" "hour" "09"": a 09:55 -0600
     * mail counts as 09, not as its UTC hour 15. */
    CHECK(parse("Fri, 21 Nov 1997 09:55:06 -0600", &when) == 0);
    CHECK(strcmp(part(&when, "hour"), "09") >= 0);
    CHECK(strcmp(part(&when, "hour"), "17") < 0);
    /* "received" "weekday" "0" / "6": a Saturday and a Sunday. */
    CHECK(parse("Sat, 30 Jun 2007 12:00:00 +0000", &when) == 0);
    CHECK_STR(part(&when, "weekday"), "6");
    CHECK(parse("Sun, 1 Jul 2007 12:00:00 +0000", &when) == 0);
    CHECK_STR(part(&when, "weekday"), "0");
    /* currentdate :value "ge" "date" "2007-06-30". */
    when.unix_seconds = 1183204800;
    when.zone_minutes = 0;
    CHECK_STR(part(&when, "date"), "2007-06-30");
    CHECK_STR(part(&when, "julian"), "54281");
    CHECK_STR(part(&when, "year"), "2007");
}

static void
test_part_bounds(void)
{
    char out[SIEVE_DATE_PART_BYTES];
    struct sieve_datetime when = {.unix_seconds = 0, .zone_minutes = 0};
    CHECK(sieve_date_part(&when, "foo", 3, out) == -EINVAL);
    CHECK(sieve_date_part(&when, "", 0, out) == -EINVAL);
    CHECK(sieve_date_part(&when, "year", 3, out) == -EINVAL);     /* "yea" */
    CHECK(sieve_date_part(&when, "yearx", 5, out) == -EINVAL);
    CHECK_STR(part(&when, "julian"), "40587");
    CHECK_STR(part(&when, "std11"), "Thu, 01 Jan 1970 00:00:00 +0000");
    /* The last second of 9999 shows; one later does not. */
    when.unix_seconds = 253402300799LL;
    CHECK_STR(part(&when, "iso8601"), "9999-12-31T23:59:59Z");
    when.unix_seconds = 253402300800LL;
    CHECK_STR(part(&when, "year"), "<error>");
    when.zone_minutes = -60; /* the same instant an hour west is still 9999 */
    CHECK_STR(part(&when, "time"), "23:00:00");
    /* The first second of year 0 shows; one earlier does not. */
    when.zone_minutes = 0;
    when.unix_seconds = -62167219200LL;
    CHECK_STR(part(&when, "date"), "0000-01-01");
    when.unix_seconds = -62167219201LL;
    CHECK_STR(part(&when, "date"), "<error>");
    when.unix_seconds = INT64_MAX;
    CHECK_STR(part(&when, "date"), "<error>");
    when.unix_seconds = INT64_MIN;
    CHECK_STR(part(&when, "date"), "<error>");
    /* The longest part fits with room for the NUL. */
    when.unix_seconds = 1057049557;
    when.zone_minutes = -1439;
    CHECK(sieve_date_part(&when, "std11", 5, out) == 31);
}

/* civil_from_days and days_from_civil against gmtime_r, and the std11
 * text read back to the same instant, every ~9.7 days from 1900 to 2200
 * at odd times and zones (from 1900-01-02: a west zone would show 1899,
 * which RFC 5322 does not allow). */
static void
test_calendar(void)
{
    unsigned long mismatches = 0;
    for (int64_t t = -2208988800LL + 86400; t < 7258118400LL; t += 837373) {
        struct sieve_datetime when = {.unix_seconds = t, .zone_minutes = 0};
        time_t tt = (time_t)t;
        struct tm tm;
        if (gmtime_r(&tt, &tm) == NULL) {
            CHECK(0);
            continue;
        }
        char want[96];
        (void)snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        char wday[16];
        (void)snprintf(wday, sizeof(wday), "%d", tm.tm_wday);
        if (strcmp(part(&when, "iso8601"), want) != 0 || strcmp(part(&when, "weekday"), wday)) {
            (void)fprintf(stderr, "gmtime: %s %s\n", want, wday);
            mismatches++;
        }
        when.zone_minutes = (int32_t)(t % 1439);
        char std11[SIEVE_DATE_PART_BYTES];
        (void)snprintf(std11, sizeof(std11), "%s", part(&when, "std11"));
        struct sieve_datetime back;
        if (parse(std11, &back) != 0 || back.unix_seconds != t ||
            back.zone_minutes != when.zone_minutes) {
            (void)fprintf(stderr, "round trip: %s\n", std11);
            mismatches++;
        }
    }
    CHECK(mismatches == 0);
}

int
main(void)
{
    test_rfc5322_appendix_a();
    test_obsolete();
    test_broken();
    test_comment_depth();
    test_field();
    test_zone_parse();
    test_zones();
    test_rfc5260_examples();
    test_part_bounds();
    test_calendar();
    UNIT_DONE();
}
