/*
 * tests/unit/test_histogram.c - the log-linear latency histogram shared by
 * toaster-bench and toasterd's stats: every bucket's range holds exactly
 * the values that map to it, percentiles stay within the promised 1/128,
 * values past the top are clamped into the bucket of HISTOGRAM_VALUE_MAX
 * but the maximum stays true, and merging adds counts.
 */
#include <stdint.h>
#include <stdlib.h>

#include "core/histogram.h"
#include "tests/unit/unit.h"

static struct histogram h;
static struct histogram merged;

static void
test_buckets(void)
{
    /* Buckets tile the value range with no gap and no overlap. */
    uint64_t expect_low = 0;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKET_COUNT; i++) {
        uint64_t low = histogram_bucket_low(i);
        uint64_t high = histogram_bucket_high(i);
        CHECK(low == expect_low);
        CHECK(high >= low);
        CHECK(histogram_index(low) == i);
        if (high <= HISTOGRAM_VALUE_MAX) {
            CHECK(histogram_index(high) == i);
        }
        /* Width within 1/128 of the values it holds (exact below 256). */
        CHECK(low < 256 ? high == low : (high - low + 1) * 128 <= low);
        expect_low = high + 1;
        if (expect_low > HISTOGRAM_VALUE_MAX) {
            CHECK(i == histogram_index(HISTOGRAM_VALUE_MAX)); /* the top one in use */
            break;
        }
    }
    CHECK(histogram_index(HISTOGRAM_VALUE_MAX) < HISTOGRAM_BUCKET_COUNT);
}

static void
test_quantiles(void)
{
    histogram_init(&h);
    CHECK(histogram_quantile(&h, 0.5) == 0);
    CHECK(histogram_mean(&h) == 0.0);
    for (uint64_t v = 1; v <= 1000; v++) {
        histogram_record(&h, v * 100); /* 100 us .. 100 ms */
    }
    CHECK(h.count == 1000);
    CHECK(h.min_us == 100);
    CHECK(h.max_us == 100000);
    uint64_t p50 = histogram_quantile(&h, 0.50);
    uint64_t p99 = histogram_quantile(&h, 0.99);
    CHECK(p50 >= 50000 && p50 <= 50000 + 50000 / 128);
    CHECK(p99 >= 99000 && p99 <= 99000 + 99000 / 128);
    CHECK(histogram_quantile(&h, 1.0) == 100000);
    CHECK(histogram_quantile(&h, 0.0) >= 100 && histogram_quantile(&h, 0.0) <= 101);
    CHECK(histogram_mean(&h) == 50050.0);

    /* Past the top: clamped into the last bucket, the maximum stays true. */
    histogram_record(&h, HISTOGRAM_VALUE_MAX * 3);
    CHECK(h.max_us == HISTOGRAM_VALUE_MAX * 3);
    CHECK(h.buckets[histogram_index(HISTOGRAM_VALUE_MAX)] == 1);
    CHECK(histogram_quantile(&h, 1.0) == HISTOGRAM_VALUE_MAX * 3 ||
          histogram_quantile(&h, 1.0) ==
              histogram_bucket_high(histogram_index(HISTOGRAM_VALUE_MAX)));
}

static void
test_merge(void)
{
    histogram_init(&h);
    histogram_init(&merged);
    histogram_record(&h, 7);
    histogram_record(&h, 300);
    histogram_merge(&merged, &h);
    histogram_merge(&merged, &h);
    CHECK(merged.count == 4);
    CHECK(merged.sum_us == 614);
    CHECK(merged.min_us == 7);
    CHECK(merged.max_us == 300);
    CHECK(merged.buckets[7] == 2);
    CHECK(histogram_quantile(&merged, 0.5) == 7);
    /* Merging an empty histogram changes nothing. */
    histogram_init(&h);
    histogram_merge(&merged, &h);
    CHECK(merged.count == 4);
    CHECK(merged.min_us == 7);
}

int
main(void)
{
    test_buckets();
    test_quantiles();
    test_merge();
    UNIT_DONE();
}
