/*
 * tests/unit/unit.h - the smallest test harness that does the job: CHECK
 * records a failure with file and line and goes on; each test program ends
 * with UNIT_DONE(), which prints "N passed, N failed" and sets the exit code
 * that meson test reads.
 */
#ifndef TOASTER_TESTS_UNIT_H
#define TOASTER_TESTS_UNIT_H

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static unsigned long unit_checks_passed;
static unsigned long unit_checks_failed;

#define CHECK(expr)                                                                  \
    do {                                                                             \
        if (expr) {                                                                  \
            unit_checks_passed++;                                                    \
        } else {                                                                     \
            unit_checks_failed++;                                                    \
            (void)fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,   \
                          #expr);                                                    \
        }                                                                            \
    } while (0)

/* Compare two byte strings; on mismatch print both (escaped). */
#define CHECK_BYTES(got, got_len, want, want_len)                                    \
    unit_check_bytes(__FILE__, __LINE__, (const void *)(got), (got_len),            \
                     (const void *)(want), (want_len))

#define CHECK_STR(got, want) CHECK_BYTES((got), strlen(got), (want), strlen(want))

static inline void
unit_print_escaped(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n && i < 400; i++) {
        if (p[i] == '\r') {
            fputs("\\r", stderr);
        } else if (p[i] == '\n') {
            fputs("\\n", stderr);
        } else if (p[i] < 0x20 || p[i] >= 0x7f) {
            fprintf(stderr, "\\x%02x", p[i]);
        } else {
            fputc(p[i], stderr);
        }
    }
    if (n > 400) {
        fputs("...", stderr);
    }
}

static inline void
unit_check_bytes(const char *file, int line, const void *got, size_t got_len, const void *want,
                 size_t want_len)
{
    if (got_len == want_len && memcmp(got, want, got_len) == 0) {
        unit_checks_passed++;
        return;
    }
    unit_checks_failed++;
    fprintf(stderr, "%s:%d: bytes differ\n  got:  \"", file, line);
    unit_print_escaped(got, got_len);
    fprintf(stderr, "\" (%zu)\n  want: \"", got_len);
    unit_print_escaped(want, want_len);
    fprintf(stderr, "\" (%zu)\n", want_len);
}

#define UNIT_DONE()                                                                  \
    do {                                                                             \
        printf("%lu passed, %lu failed\n", unit_checks_passed, unit_checks_failed);  \
        return unit_checks_failed == 0 ? 0 : 1;                                      \
    } while (0)

#endif
