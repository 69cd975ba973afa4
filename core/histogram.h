/*
 * core/histogram.h - log-linear latency histogram (HDR style).
 *
 * Values are microseconds from 0 to HISTOGRAM_VALUE_MAX (100 s);
 * larger values are clamped into the top bucket but still reported as the
 * true maximum. Below 256 us every value has its own bucket; above, each
 * power of two is split into 128 equal buckets, so a reported percentile is
 * within 1/128 (0.8 %) of the recorded value. The whole table is a fixed
 * array: recording never allocates.
 *
 * One thread records into a histogram; any other thread may read it at the
 * same time (counters are stored and loaded with relaxed atomics), which is
 * what toaster-bench's live progress line and toasterd's stats (a reactor
 * records, the control thread reads) do. A snapshot taken that way is
 * approximate, never torn per counter.
 */
#ifndef TOASTER_CORE_HISTOGRAM_H
#define TOASTER_CORE_HISTOGRAM_H

#include <stdint.h>

/* 100 seconds in microseconds. */
#define HISTOGRAM_VALUE_MAX UINT64_C(100000000)

/* Bits of linear resolution per power of two (8: 256 exact buckets, then
 * 128 per power of two). */
#define HISTOGRAM_SUB_BITS 8
#define HISTOGRAM_SUB_COUNT (1u << HISTOGRAM_SUB_BITS)
#define HISTOGRAM_HALF_COUNT (HISTOGRAM_SUB_COUNT / 2)
/* 2^27 > 100 s in us: 256 exact buckets + (27 - 8) magnitudes of 128. */
#define HISTOGRAM_BUCKET_COUNT                                                                     \
    (HISTOGRAM_SUB_COUNT + (27 - HISTOGRAM_SUB_BITS) * HISTOGRAM_HALF_COUNT)

struct histogram {
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t min_us; /* UINT64_MAX while empty */
    uint64_t buckets[HISTOGRAM_BUCKET_COUNT];
};

/* Empty the histogram. */
void histogram_init(struct histogram *histogram);

/* Record one value (microseconds). Only the owning thread may call this. */
void histogram_record(struct histogram *histogram, uint64_t value_us);

/* Add every count of src into dst. src may be recorded into concurrently
 * by its owner; dst must be private to the caller. */
void histogram_merge(struct histogram *dst, const struct histogram *src);

/* The value at quantile q (0.0 .. 1.0): the highest value equivalent to the
 * bucket holding the q-th recorded value, never above the true maximum.
 * Returns 0 for an empty histogram. */
uint64_t histogram_quantile(const struct histogram *histogram, double q);

/* Mean in microseconds, 0 when empty. */
double histogram_mean(const struct histogram *histogram);

/* Bucket index for a value and the range of values a bucket holds; exposed
 * for the unit checks. */
uint32_t histogram_index(uint64_t value_us);
uint64_t histogram_bucket_low(uint32_t index);
uint64_t histogram_bucket_high(uint32_t index);

#endif
