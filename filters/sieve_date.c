/*
 * filters/sieve_date.c - RFC 5322 date-times for the Sieve "date" and
 * "currentdate" tests (RFC 5260): parse, and show date parts in a zone.
 *
 * Owns nothing: pure functions over the caller's bytes. Calendar work is
 * done here with days-from-civil arithmetic on a proleptic Gregorian
 * calendar, so nothing depends on TZ, localtime() or timegm(). Any thread.
 * Limits: a date-time is read in one pass (linear in len); comments nest
 * at most SIEVE_DATE_COMMENT_DEPTH_MAX deep; years 1900..9999 when parsed
 * (RFC 5322 3.3), 0000..9999 when shown.
 */
#include "filters/sieve_date.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/ascii.h"
#include "core/assertions.h"

#define SIEVE_DATE_COMMENT_DEPTH_MAX 32u
#define SIEVE_DATE_ZONE_MINUTES_MAX 1439
#define SIEVE_DATE_SECONDS_PER_DAY 86400
/* 1970-01-01 is Modified Julian Day 40587 (MJD 0 is 1858-11-17). */
#define SIEVE_DATE_MJD_UNIX_EPOCH 40587
/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the instants a part
 * can show (plus a day each way for the zone shift). */
#define SIEVE_DATE_UNIX_MIN (-62167219200LL - SIEVE_DATE_SECONDS_PER_DAY)
#define SIEVE_DATE_UNIX_MAX (253402300799LL + SIEVE_DATE_SECONDS_PER_DAY)

static_assert(SIEVE_DATE_PART_BYTES >= sizeof("Wed, 12 Oct 2005 19:57:00 -0700"),
              "std11 fits");
static_assert(SIEVE_DATE_PART_BYTES >= sizeof("2005-10-12T19:57:00-07:00"), "iso8601 fits");

static const char *const month_names[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char *const day_names[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

struct date_scan {
    const char *text;
    size_t len;
    size_t pos;
};

struct civil {
    int64_t year;
    unsigned month; /* 1..12 */
    unsigned day;   /* 1..31 */
};

static int scan_cfws(struct date_scan *scan);
static size_t scan_digits(struct date_scan *scan, size_t digits_max, unsigned *value_out);
static size_t scan_alpha(struct date_scan *scan, char *word, size_t word_bytes);
static bool scan_char(struct date_scan *scan, char c);
static bool word_is(const char *word, size_t word_len, const char *name);
static int zone_from_word(const char *word, size_t word_len, int32_t *minutes_out);
static int64_t days_from_civil(int64_t year, unsigned month, unsigned day);
static struct civil civil_from_days(int64_t days);
static unsigned days_in_month(int64_t year, unsigned month);
static int64_t floor_div(int64_t a, int64_t b);

int
sieve_date_parse(const char *text, size_t len, struct sieve_datetime *out)
{
    ASSERT(out != NULL);
    ASSERT(text != NULL || len == 0);
    struct date_scan scan = {.text = text, .len = len, .pos = 0};
    char word[8];
    size_t word_len;
    unsigned day = 0;
    unsigned year = 0;
    unsigned hour = 0;
    unsigned minute = 0;
    unsigned second = 0;
    unsigned month = 0;
    int32_t zone_minutes = 0;

    if (scan_cfws(&scan) < 0) {
        return -EINVAL;
    }
    /* [ day-of-week "," ]: the name is checked, not whether it agrees
     * with the date (RFC 5322 asks senders for that; readers need not). */
    if (scan.pos < len && ((text[scan.pos] | 0x20) >= 'a' && (text[scan.pos] | 0x20) <= 'z')) {
        word_len = scan_alpha(&scan, word, sizeof(word));
        bool is_day = false;
        for (size_t i = 0; i < 7; i++) {
            is_day = is_day || word_is(word, word_len, day_names[i]);
        }
        if (!is_day || scan_cfws(&scan) < 0 || !scan_char(&scan, ',') || scan_cfws(&scan) < 0) {
            return -EINVAL;
        }
    }
    if (scan_digits(&scan, 2, &day) == 0 || scan_cfws(&scan) < 0) {
        return -EINVAL;
    }
    word_len = scan_alpha(&scan, word, sizeof(word));
    for (unsigned i = 0; i < 12; i++) {
        if (word_is(word, word_len, month_names[i])) {
            month = i + 1;
        }
    }
    if (month == 0 || scan_cfws(&scan) < 0) {
        return -EINVAL;
    }
    size_t year_digits = scan_digits(&scan, 4, &year);
    if (year_digits < 2 || (scan.pos < len && text[scan.pos] >= '0' && text[scan.pos] <= '9')) {
        return -EINVAL; /* one digit, or more than four */
    }
    /* RFC 5322 4.3: two digits are 1950..2049, three digits add 1900. */
    if (year_digits == 2) {
        year += year < 50 ? 2000u : 1900u;
    } else if (year_digits == 3) {
        year += 1900u;
    }
    if (year < 1900 || day < 1 || day > days_in_month(year, month) || scan_cfws(&scan) < 0) {
        return -EINVAL;
    }
    /* time-of-day, with the CFWS around the colons that 4.3 allows. */
    if (scan_digits(&scan, 2, &hour) == 0 || scan_cfws(&scan) < 0 || !scan_char(&scan, ':') ||
        scan_cfws(&scan) < 0 || scan_digits(&scan, 2, &minute) == 0 || scan_cfws(&scan) < 0) {
        return -EINVAL;
    }
    if (scan_char(&scan, ':')) {
        if (scan_cfws(&scan) < 0 || scan_digits(&scan, 2, &second) == 0 ||
            scan_cfws(&scan) < 0) {
            return -EINVAL;
        }
    }
    if (hour > 23 || minute > 59 || second > 60) {
        return -EINVAL;
    }
    /* A leap second cannot be told apart in Unix time: it counts as :59. */
    if (second == 60) {
        second = 59;
    }
    if (scan.pos < len && (text[scan.pos] == '+' || text[scan.pos] == '-')) {
        bool is_negative = text[scan.pos] == '-';
        unsigned hhmm = 0;
        scan.pos++;
        if (scan_digits(&scan, 4, &hhmm) != 4 || hhmm / 100 > 23 || hhmm % 100 > 59) {
            return -EINVAL;
        }
        zone_minutes = (int32_t)((hhmm / 100) * 60 + hhmm % 100);
        if (is_negative) {
            zone_minutes = -zone_minutes;
        }
    } else {
        word_len = scan_alpha(&scan, word, sizeof(word));
        if (zone_from_word(word, word_len, &zone_minutes) < 0) {
            return -EINVAL;
        }
    }
    if (scan_cfws(&scan) < 0 || scan.pos != len) {
        return -EINVAL;
    }
    int64_t days = days_from_civil(year, month, day);
    out->unix_seconds = days * SIEVE_DATE_SECONDS_PER_DAY + (int64_t)hour * 3600 +
                        (int64_t)minute * 60 + (int64_t)second - (int64_t)zone_minutes * 60;
    out->zone_minutes = zone_minutes;
    return 0;
}

int
sieve_date_parse_field(const char *value, size_t len, struct sieve_datetime *out)
{
    ASSERT(value != NULL || len == 0);
    size_t start = 0;
    for (size_t i = len; i > 0; i--) {
        if (value[i - 1] == ';') {
            start = i;
            break;
        }
    }
    return sieve_date_parse(value + start, len - start, out);
}

int
sieve_zone_parse(const char *text, size_t len, int32_t *minutes_out)
{
    ASSERT(minutes_out != NULL);
    ASSERT(text != NULL || len == 0);
    if (len != 5 || (text[0] != '+' && text[0] != '-')) {
        return -EINVAL;
    }
    unsigned digits[4];
    for (size_t i = 0; i < 4; i++) {
        unsigned char c = (unsigned char)text[1 + i];
        if (c < '0' || c > '9') {
            return -EINVAL;
        }
        digits[i] = c - '0';
    }
    unsigned hours = digits[0] * 10 + digits[1];
    unsigned minutes = digits[2] * 10 + digits[3];
    if (hours > 23 || minutes > 59) {
        return -EINVAL;
    }
    int32_t total = (int32_t)(hours * 60 + minutes);
    *minutes_out = text[0] == '-' ? -total : total;
    return 0;
}

int
sieve_date_part(const struct sieve_datetime *when, const char *part, size_t part_len,
                char out[SIEVE_DATE_PART_BYTES])
{
    ASSERT(when != NULL);
    ASSERT(out != NULL);
    ASSERT(part != NULL || part_len == 0);
    out[0] = '\0';
    if (when->zone_minutes < -SIEVE_DATE_ZONE_MINUTES_MAX ||
        when->zone_minutes > SIEVE_DATE_ZONE_MINUTES_MAX) {
        return -EINVAL;
    }
    static const char *const parts[] = {"year",   "month",   "day",   "date", "julian",
                                        "hour",   "minute",  "second", "time", "iso8601",
                                        "std11",  "zone",    "weekday"};
    size_t which = sizeof(parts) / sizeof(parts[0]);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (word_is(part, part_len, parts[i])) {
            which = i;
            break;
        }
    }
    if (which == sizeof(parts) / sizeof(parts[0])) {
        return -EINVAL;
    }
    if (when->unix_seconds < SIEVE_DATE_UNIX_MIN || when->unix_seconds > SIEVE_DATE_UNIX_MAX) {
        return -ERANGE;
    }
    int64_t local = when->unix_seconds + (int64_t)when->zone_minutes * 60;
    int64_t days = floor_div(local, SIEVE_DATE_SECONDS_PER_DAY);
    int64_t secs = local - days * SIEVE_DATE_SECONDS_PER_DAY;
    struct civil civil = civil_from_days(days);
    if (civil.year < 0 || civil.year > 9999) {
        return -ERANGE;
    }
    int year = (int)civil.year;
    int month = (int)civil.month;
    int day = (int)civil.day;
    int hour = (int)(secs / 3600);
    int minute = (int)(secs / 60 % 60);
    int second = (int)(secs % 60);
    int weekday = (int)(days - 7 * floor_div(days + 4, 7) + 4); /* 1970-01-01 was a Thursday */
    int zone_abs = when->zone_minutes < 0 ? -when->zone_minutes : when->zone_minutes;
    char zone_sign = when->zone_minutes < 0 ? '-' : '+'; /* 0 is "+0000" (RFC 5260 4.2) */
    char zone[8];
    int n;

    ASSERT(weekday >= 0 && weekday <= 6);
    n = snprintf(zone, sizeof(zone), "%c%02d%02d", zone_sign, zone_abs / 60, zone_abs % 60);
    ASSERT(n == 5);
    switch (which) {
    case 0:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%04d", year);
        break;
    case 1:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d", month);
        break;
    case 2:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d", day);
        break;
    case 3:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%04d-%02d-%02d", year, month, day);
        break;
    case 4:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%lld",
                     (long long)(days + SIEVE_DATE_MJD_UNIX_EPOCH));
        break;
    case 5:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d", hour);
        break;
    case 6:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d", minute);
        break;
    case 7:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d", second);
        break;
    case 8:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%02d:%02d:%02d", hour, minute, second);
        break;
    case 9:
        /* RFC 3339 date-time, as Pigeonhole writes it: "Z" for offset 0. */
        if (when->zone_minutes == 0) {
            n = snprintf(out, SIEVE_DATE_PART_BYTES, "%04d-%02d-%02dT%02d:%02d:%02dZ", year,
                         month, day, hour, minute, second);
        } else {
            n = snprintf(out, SIEVE_DATE_PART_BYTES, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                         year, month, day, hour, minute, second, zone_sign, zone_abs / 60,
                         zone_abs % 60);
        }
        break;
    case 10:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%s, %02d %s %04d %02d:%02d:%02d %s",
                     day_names[weekday], day, month_names[month - 1], year, hour, minute,
                     second, zone);
        break;
    case 11:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%s", zone);
        break;
    default:
        n = snprintf(out, SIEVE_DATE_PART_BYTES, "%d", weekday);
        break;
    }
    ASSERT(n > 0);
    ASSERT((size_t)n < SIEVE_DATE_PART_BYTES);
    return n;
}

/* Skips CFWS: blanks, CR, LF (folding is not checked for form: a header
 * value has already been unfolded or is folded correctly) and comments,
 * nested up to SIEVE_DATE_COMMENT_DEPTH_MAX, with quoted-pairs. Returns 0,
 * or -1 for an unclosed or too deeply nested comment. */
static int
scan_cfws(struct date_scan *scan)
{
    unsigned depth = 0;
    while (scan->pos < scan->len) {
        char c = scan->text[scan->pos];
        if (depth > 0 && c == '\\') {
            scan->pos += scan->pos + 1 < scan->len ? 2 : 1;
            continue;
        }
        if (c == '(') {
            if (depth == SIEVE_DATE_COMMENT_DEPTH_MAX) {
                return -1;
            }
            depth++;
        } else if (c == ')' && depth > 0) {
            depth--;
        } else if (depth == 0 && !ascii_is_blank(c) && c != '\r' && c != '\n') {
            break;
        }
        scan->pos++;
    }
    return depth == 0 ? 0 : -1;
}

/* Reads 1..digits_max decimal digits; returns how many (0: none). */
static size_t
scan_digits(struct date_scan *scan, size_t digits_max, unsigned *value_out)
{
    size_t count = 0;
    unsigned value = 0;
    while (count < digits_max && scan->pos < scan->len && scan->text[scan->pos] >= '0' &&
           scan->text[scan->pos] <= '9') {
        value = value * 10 + (unsigned)(scan->text[scan->pos] - '0');
        scan->pos++;
        count++;
    }
    *value_out = value;
    return count;
}

/* Reads a run of ASCII letters; returns its length (the whole run is
 * consumed, but only word_bytes of it kept: a longer word matches no
 * name, as its length says). */
static size_t
scan_alpha(struct date_scan *scan, char *word, size_t word_bytes)
{
    size_t count = 0;
    while (scan->pos < scan->len) {
        char c = scan->text[scan->pos];
        char lower = (char)(c | 0x20);
        if (lower < 'a' || lower > 'z') {
            break;
        }
        if (count < word_bytes) {
            word[count] = c;
        }
        count++;
        scan->pos++;
    }
    return count;
}

static bool
scan_char(struct date_scan *scan, char c)
{
    if (scan->pos < scan->len && scan->text[scan->pos] == c) {
        scan->pos++;
        return true;
    }
    return false;
}

/* Whether word[0..word_len) is name, ignoring ASCII case. */
static bool
word_is(const char *word, size_t word_len, const char *name)
{
    size_t name_len = strlen(name);
    if (word_len != name_len) {
        return false;
    }
    for (size_t i = 0; i < name_len; i++) {
        if (ascii_lower((unsigned char)word[i]) != (unsigned char)name[i] &&
            ascii_lower((unsigned char)word[i]) != ascii_lower((unsigned char)name[i])) {
            return false;
        }
    }
    return true;
}

/* obs-zone (RFC 5322 4.3): UT, GMT and the North American zones have
 * their offsets; military letters and any other alphabetic zone of up to
 * five letters mean "-0000" (no information), kept as offset 0. */
static int
zone_from_word(const char *word, size_t word_len, int32_t *minutes_out)
{
    static const struct {
        const char *name;
        int32_t minutes;
    } zones[] = {{"UT", 0},        {"GMT", 0},       {"EST", -5 * 60}, {"EDT", -4 * 60},
                 {"CST", -6 * 60}, {"CDT", -5 * 60}, {"MST", -7 * 60}, {"MDT", -6 * 60},
                 {"PST", -8 * 60}, {"PDT", -7 * 60}};
    if (word_len == 0 || word_len > 5) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        if (word_is(word, word_len, zones[i].name)) {
            *minutes_out = zones[i].minutes;
            return 0;
        }
    }
    *minutes_out = 0;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil: eras of 400 years, March-based years). */
static int64_t
days_from_civil(int64_t year, unsigned month, unsigned day)
{
    year -= month <= 2 ? 1 : 0;
    int64_t era = floor_div(year, 400);
    int64_t year_of_era = year - era * 400;                               /* 0..399 */
    int64_t month_index = month > 2 ? (int64_t)month - 3 : (int64_t)month + 9; /* Mar = 0 */
    int64_t day_of_year = (153 * month_index + 2) / 5 + (int64_t)day - 1; /* 0..365 */
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

static struct civil
civil_from_days(int64_t days)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t day_of_era = days - era * 146097;                                 /* 0..146096 */
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_index = (5 * day_of_year + 2) / 153;                        /* Mar = 0 */
    struct civil civil;
    civil.day = (unsigned)(day_of_year - (153 * month_index + 2) / 5 + 1);
    civil.month = (unsigned)(month_index < 10 ? month_index + 3 : month_index - 9);
    civil.year = year_of_era + era * 400 + (civil.month <= 2 ? 1 : 0);
    return civil;
}

static unsigned
days_in_month(int64_t year, unsigned month)
{
    static const unsigned lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    ASSERT(month >= 1 && month <= 12);
    if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) {
        return 29;
    }
    return lengths[month - 1];
}

/* Division rounding toward minus infinity (b > 0). */
static int64_t
floor_div(int64_t a, int64_t b)
{
    ASSERT(b > 0);
    int64_t q = a / b;
    if (a % b != 0 && a < 0) {
        q--;
    }
    return q;
}
