/*
 * filters/sieve_date.h - dates for the Sieve "date" and "currentdate"
 * tests (RFC 5260): parsing an RFC 5322 date-time (and its obsolete
 * forms), moving it to another zone, and the date parts of section 4.2.
 * Pure functions, no I/O, no locale, no time zone database (zones are
 * numeric offsets, as RFC 5260 asks).
 */
#ifndef TOASTER_FILTERS_SIEVE_DATE_H
#define TOASTER_FILTERS_SIEVE_DATE_H

#include <stddef.h>
#include <stdint.h>

struct sieve_datetime {
    int64_t unix_seconds; /* the instant */
    int32_t zone_minutes; /* the offset it is shown in, -1439 .. 1439 */
};

#define SIEVE_DATE_PART_BYTES 32u /* longest date part text + NUL ("std11" is ~31) */

/* Parses an RFC 5322 date-time (day-of-week optional, obsolete zones
 * "UT", "GMT", "EST" ... and military letters as RFC 5322 4.3 says,
 * comments and folding white space tolerated, 2-digit years per 4.3).
 * Returns 0 or -EINVAL. */
int sieve_date_parse(const char *text, size_t len, struct sieve_datetime *out);

/* The same for a header field value that holds a date-time: the whole
 * value, or (as in Received:) the part after its last ';' when there is
 * one (RFC 5260 section 4, Pigeonhole does the same). 0 or -EINVAL. */
int sieve_date_parse_field(const char *value, size_t len, struct sieve_datetime *out);

/* Parses a :zone argument "+hhmm" / "-hhmm" into minutes. 0 or -EINVAL. */
int sieve_zone_parse(const char *text, size_t len, int32_t *minutes_out);

/* Writes date part part[0..part_len) (RFC 5260 4.2: "year", "month",
 * "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
 * "std11", "zone", "weekday"; names case-insensitive) of when, shown in
 * its zone, into out (SIEVE_DATE_PART_BYTES), NUL-terminated. Returns the
 * length, or -EINVAL for an unknown part or a zone outside -1439..1439,
 * or -ERANGE when the local date falls outside the years 0000..9999. */
int sieve_date_part(const struct sieve_datetime *when, const char *part, size_t part_len,
                    char out[SIEVE_DATE_PART_BYTES]);

#endif
