/*
 * tests/fuzz/fuzz_sieve_date.c - libFuzzer harness for the RFC 5322 date
 * reader of the Sieve "date" test (filters/sieve_date), which parses
 * Date: and Received: values that any sender writes.
 *
 * The input is a header field value. Properties: parsing an exact-size
 * heap copy (so ASan sees any read past it) gives 0 or -EINVAL and is
 * deterministic; an accepted date has a zone within -1439..1439 and every
 * date part of RFC 5260 4.2 formats (NUL-terminated, the length returned,
 * within SIEVE_DATE_PART_BYTES); its "std11" text parses back to the same
 * instant and zone; the field form (after the last ';') agrees with the
 * plain form when there is no ';'; the zone parser accepts only "+hhmm" /
 * "-hhmm" within range.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   filters/sieve_date.c core/assertions.c tests/fuzz/fuzz_sieve_date.c
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/sieve_date.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const parts[] = {"year", "month", "day",     "date", "julian",
                                    "hour", "minute", "second", "time", "iso8601",
                                    "std11", "zone",  "weekday"};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size > 0 ? size : 1);
    if (text == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(text, data, size);
    }
    struct sieve_datetime when;
    struct sieve_datetime again;
    int rc = sieve_date_parse(text, size, &when);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    FUZZ_CHECK(sieve_date_parse(text, size, &again) == rc);
    if (memchr(text, ';', size) == NULL) {
        FUZZ_CHECK(sieve_date_parse_field(text, size, &again) == rc);
    } else {
        int field_rc = sieve_date_parse_field(text, size, &again);
        FUZZ_CHECK(field_rc == 0 || field_rc == -EINVAL);
    }
    if (rc == 0) {
        FUZZ_CHECK(when.zone_minutes >= -1439 && when.zone_minutes <= 1439);
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            char out[SIEVE_DATE_PART_BYTES];
            int n = sieve_date_part(&when, parts[i], strlen(parts[i]), out);
            FUZZ_CHECK(n > 0);
            FUZZ_CHECK((size_t)n < SIEVE_DATE_PART_BYTES);
            FUZZ_CHECK(strlen(out) == (size_t)n);
        }
        char std11[SIEVE_DATE_PART_BYTES];
        int n = sieve_date_part(&when, "std11", 5, std11);
        FUZZ_CHECK(n > 0);
        FUZZ_CHECK(sieve_date_parse(std11, (size_t)n, &again) == 0);
        FUZZ_CHECK(again.unix_seconds == when.unix_seconds);
        FUZZ_CHECK(again.zone_minutes == when.zone_minutes);
    }
    /* The input as a date-part name and as a :zone argument. */
    struct sieve_datetime epoch = {.unix_seconds = 0, .zone_minutes = 0};
    char out[SIEVE_DATE_PART_BYTES];
    int n = sieve_date_part(&epoch, text, size, out);
    FUZZ_CHECK(n == -EINVAL || (n > 0 && (size_t)n < SIEVE_DATE_PART_BYTES));
    int32_t minutes = 0;
    rc = sieve_zone_parse(text, size, &minutes);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        FUZZ_CHECK(size == 5);
        FUZZ_CHECK(minutes >= -1439 && minutes <= 1439);
    }
    free(text);
    return 0;
}
