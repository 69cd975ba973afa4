/*
 * core/metrics_text.h - the Prometheus text exposition format (0.0.4),
 * written into a bounded buffer, and the fixed-bound histogram that
 * several threads may record into at once.
 *
 * Pure formatting: no I/O, no allocation, no clock. The caller names
 * every metric and label (constants of ours); only label values are
 * escaped, and those come from fixed tables too (a reactor index, a
 * filter name, a reason), never from a client, so the number of series
 * stays bounded. Writing past the buffer stops the document: the text
 * is then marked over (metrics_text_is_over) and must not be served.
 *
 * Durations are exported in seconds from whole microseconds, written as
 * exact decimals ("0.001250"), so the output is byte-for-byte testable
 * (tests/unit/test_metrics.c). Histograms share one set of upper bounds
 * (METRICS_BOUNDS_COUNT, from 100 us to 60 s, then +Inf).
 */
#ifndef TOASTER_CORE_METRICS_TEXT_H
#define TOASTER_CORE_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/histogram.h"

/* The content type of the format. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Labels on one sample (le included, for histograms). */
#define METRICS_LABELS_MAX 4
/* A label value or a HELP text longer than this is cut (ours never are). */
#define METRICS_VALUE_BYTES_MAX 256

/* Upper bounds of every latency histogram, in microseconds; +Inf follows. */
#define METRICS_BOUNDS_COUNT 18
extern const uint64_t metrics_bounds_us[METRICS_BOUNDS_COUNT];

struct metrics_text {
    char  *buf;
    size_t cap;
    size_t len;
    bool   is_over; /* something did not fit: the document is incomplete */
};

struct metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, ours */
    const char *value; /* any bytes, escaped on output */
};

/* A histogram with the fixed bounds that any number of threads record
 * into (atomic adds; a reader may see one observation's bucket before
 * its count, never a torn word). Zeroed memory is empty. */
struct metrics_histogram {
    uint64_t buckets[METRICS_BOUNDS_COUNT + 1]; /* not cumulative; the last is +Inf */
    uint64_t sum_us;
    uint64_t count;
};

/* Cumulative counts ready to print: cumulative[i] observations <=
 * metrics_bounds_us[i]; count is the +Inf bucket. */
struct metrics_buckets {
    uint64_t cumulative[METRICS_BOUNDS_COUNT];
    uint64_t count;
    uint64_t sum_us;
};

/* Start a document in buf[0..cap). */
void metrics_text_init(struct metrics_text *text, char *buf, size_t cap);

/* Whether the document was cut (then serve an error, not the text). */
bool metrics_text_is_over(const struct metrics_text *text);

/* "# HELP name help\n# TYPE name type\n": type is "counter", "gauge" or
 * "histogram"; help is escaped (\\ and \n). Once per family, before its
 * samples. */
void metrics_text_family(struct metrics_text *text, const char *name, const char *type,
                         const char *help);

/* One sample: name{labels} value\n. Label values are escaped (\\, \"
 * and \n). label_count <= METRICS_LABELS_MAX. */
void metrics_text_sample(struct metrics_text *text, const char *name,
                         const struct metrics_label *labels, size_t label_count, uint64_t value);

/* The same with microseconds written as seconds ("1.000250"). */
void metrics_text_sample_seconds(struct metrics_text *text, const char *name,
                                 const struct metrics_label *labels, size_t label_count,
                                 uint64_t value_us);

/* The samples of one histogram series: name_bucket{labels,le="..."} for
 * every bound and +Inf, name_sum{labels} (seconds), name_count{labels}.
 * label_count < METRICS_LABELS_MAX (le is added). */
void metrics_text_histogram(struct metrics_text *text, const char *name,
                            const struct metrics_label *labels, size_t label_count,
                            const struct metrics_buckets *buckets);

/* Escape a label value into out (NUL-terminated). Returns the length, or
 * -ENOSPC when it does not fit. */
int metrics_label_escape(const char *value, char *out, size_t out_bytes);

/* Record one value (microseconds) into a shared histogram. Any thread. */
void metrics_histogram_observe(struct metrics_histogram *histogram, uint64_t value_us);

/* Add a shared histogram's counts into buckets (cumulative). Any thread.
 * Zero buckets first (memset) to read one histogram alone. */
void metrics_histogram_add_to(const struct metrics_histogram *histogram,
                              struct metrics_buckets *buckets);

/* Add a log-linear latency histogram (core/histogram.h) into buckets: a
 * value counts under a bound only when its whole histogram bucket lies at
 * or below it, so no count claims a value above its le (values within
 * 0.8 % above a bound may be counted under the next one). */
void metrics_buckets_from_histogram(const struct histogram *histogram,
                                    struct metrics_buckets *buckets);

#endif
