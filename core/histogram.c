/*
 * core/histogram.c - log-linear latency histogram (HDR style).
 *
 * Owns nothing but its fixed table. Written by one thread (the event loop
 * that measured the latency), read by others for progress, stats and the
 * final merge; see the header for the precision and the bounds.
 */
#include "core/histogram.h"

#include <assert.h>
#include <stddef.h>

#include "core/assertions.h"

static_assert(HISTOGRAM_VALUE_MAX < (UINT64_C(1) << 27),
              "the bucket table covers values below 2^27 us");

/* Single-writer counters: the owner stores, anyone loads, both relaxed. */
static inline uint64_t
load_relaxed(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void
store_relaxed(uint64_t *p, uint64_t value)
{
    __atomic_store_n(p, value, __ATOMIC_RELAXED);
}

void
histogram_init(struct histogram *histogram)
{
    ASSERT(histogram != NULL);
    store_relaxed(&histogram->count, 0);
    store_relaxed(&histogram->sum_us, 0);
    store_relaxed(&histogram->max_us, 0);
    store_relaxed(&histogram->min_us, UINT64_MAX);
    for (uint32_t i = 0; i < HISTOGRAM_BUCKET_COUNT; i++) {
        store_relaxed(&histogram->buckets[i], 0);
    }
}

void
histogram_record(struct histogram *histogram, uint64_t value_us)
{
    uint64_t clamped = value_us > HISTOGRAM_VALUE_MAX ? HISTOGRAM_VALUE_MAX : value_us;
    uint32_t index = histogram_index(clamped);

    ASSERT(index < HISTOGRAM_BUCKET_COUNT);
    store_relaxed(&histogram->buckets[index], histogram->buckets[index] + 1);
    store_relaxed(&histogram->sum_us, histogram->sum_us + value_us);
    if (value_us > histogram->max_us) {
        store_relaxed(&histogram->max_us, value_us);
    }
    if (value_us < histogram->min_us) {
        store_relaxed(&histogram->min_us, value_us);
    }
    /* Count last, so a reader never sees more values than bucket entries
     * (it may see fewer, which only makes the snapshot slightly old). */
    store_relaxed(&histogram->count, histogram->count + 1);
}

void
histogram_merge(struct histogram *dst, const struct histogram *src)
{
    ASSERT(dst != NULL);
    ASSERT(src != NULL);
    ASSERT(dst != src);
    uint64_t count = 0;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKET_COUNT; i++) {
        uint64_t n = load_relaxed(&src->buckets[i]);
        dst->buckets[i] += n;
        count += n;
    }
    /* The bucket sum is the count this snapshot is consistent with. */
    dst->count += count;
    dst->sum_us += load_relaxed(&src->sum_us);
    uint64_t max_us = load_relaxed(&src->max_us);
    uint64_t min_us = load_relaxed(&src->min_us);
    if (max_us > dst->max_us) {
        dst->max_us = max_us;
    }
    if (min_us < dst->min_us) {
        dst->min_us = min_us;
    }
}

uint64_t
histogram_quantile(const struct histogram *histogram, double q)
{
    uint64_t count = load_relaxed(&histogram->count);
    uint64_t max_us = load_relaxed(&histogram->max_us);

    if (count == 0) {
        return 0;
    }
    if (q < 0.0) {
        q = 0.0;
    }
    if (q > 1.0) {
        q = 1.0;
    }
    /* Rank of the wanted value, 1-based, rounded up: the p99 of 1000
     * values is the 990th. */
    uint64_t rank = (uint64_t)(q * (double)count + 0.999999);
    if (rank == 0) {
        rank = 1;
    }
    if (rank > count) {
        rank = count;
    }
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKET_COUNT; i++) {
        seen += load_relaxed(&histogram->buckets[i]);
        if (seen >= rank) {
            uint64_t high = histogram_bucket_high(i);
            return high < max_us ? high : max_us;
        }
    }
    /* A concurrent snapshot may have a count ahead of its buckets. */
    return max_us;
}

double
histogram_mean(const struct histogram *histogram)
{
    uint64_t count = load_relaxed(&histogram->count);

    if (count == 0) {
        return 0.0;
    }
    return (double)load_relaxed(&histogram->sum_us) / (double)count;
}

uint32_t
histogram_index(uint64_t value_us)
{
    ASSERT(value_us <= HISTOGRAM_VALUE_MAX);
    if (value_us < HISTOGRAM_SUB_COUNT) {
        return (uint32_t)value_us;
    }
    uint32_t msb = 63u - (uint32_t)__builtin_clzll(value_us);
    uint32_t shift = msb - (HISTOGRAM_SUB_BITS - 1);
    uint32_t top = (uint32_t)(value_us >> shift);

    ASSERT(shift >= 1);
    ASSERT(top >= HISTOGRAM_HALF_COUNT);
    ASSERT(top < HISTOGRAM_SUB_COUNT);
    return HISTOGRAM_SUB_COUNT + (shift - 1) * HISTOGRAM_HALF_COUNT + (top - HISTOGRAM_HALF_COUNT);
}

uint64_t
histogram_bucket_low(uint32_t index)
{
    ASSERT(index < HISTOGRAM_BUCKET_COUNT);
    if (index < HISTOGRAM_SUB_COUNT) {
        return index;
    }
    uint32_t k = index - HISTOGRAM_SUB_COUNT;
    uint32_t shift = k / HISTOGRAM_HALF_COUNT + 1;
    uint64_t top = HISTOGRAM_HALF_COUNT + k % HISTOGRAM_HALF_COUNT;
    return top << shift;
}

uint64_t
histogram_bucket_high(uint32_t index)
{
    ASSERT(index < HISTOGRAM_BUCKET_COUNT);
    if (index < HISTOGRAM_SUB_COUNT) {
        return index;
    }
    uint32_t shift = (index - HISTOGRAM_SUB_COUNT) / HISTOGRAM_HALF_COUNT + 1;
    return histogram_bucket_low(index) + (UINT64_C(1) << shift) - 1;
}
