/*
 * tests/unit/test_metrics.c - the Prometheus text format writer
 * (core/metrics_text): HELP/TYPE lines, samples with and without labels,
 * label and HELP escaping, seconds written as exact decimals, histograms
 * with cumulative buckets, +Inf, _sum and _count, byte for byte; the
 * conversion of the log-linear latency histogram into the fixed bounds;
 * the shared histogram under several writing threads; the buffer bound at
 * its edge (fits, one byte short) and an over-long label value.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/histogram.h"
#include "core/metrics_text.h"
#include "core/stats.h"
#include "tests/unit/unit.h"

static char buf[64 * 1024];

static void
test_escape(void)
{
    char out[64];
    CHECK(metrics_label_escape("plain", out, sizeof(out)) == 5);
    CHECK_STR(out, "plain");
    CHECK(metrics_label_escape("a\\b\"c\nd", out, sizeof(out)) == 10);
    CHECK_STR(out, "a\\\\b\\\"c\\nd");
    CHECK(metrics_label_escape("", out, sizeof(out)) == 0);
    CHECK_STR(out, "");
    /* The bound: 5 bytes need 6 with the NUL. */
    CHECK(metrics_label_escape("abcde", out, 6) == 5);
    CHECK(metrics_label_escape("abcde", out, 5) == -ENOSPC);
    CHECK_STR(out, "");
    /* An escape pair does not get split at the edge. */
    CHECK(metrics_label_escape("ab\"", out, 5) == 4);
    CHECK(metrics_label_escape("ab\"", out, 4) == -ENOSPC);
}

static void
test_samples(void)
{
    struct metrics_text t;
    metrics_text_init(&t, buf, sizeof(buf));
    metrics_text_family(&t, "toaster_x_total", "counter", "Things.");
    metrics_text_sample(&t, "toaster_x_total", NULL, 0, 0);
    struct metrics_label labels[2] = { { "reactor", "0" }, { "reason", "a\"b\\c\nd" } };
    metrics_text_sample(&t, "toaster_x_total", labels, 2, UINT64_MAX);
    metrics_text_sample(&t, "toaster_x_total", labels, 1, 42);
    CHECK(!metrics_text_is_over(&t));
    CHECK_STR(buf, "# HELP toaster_x_total Things.\n"
                   "# TYPE toaster_x_total counter\n"
                   "toaster_x_total 0\n"
                   "toaster_x_total{reactor=\"0\",reason=\"a\\\"b\\\\c\\nd\"} "
                   "18446744073709551615\n"
                   "toaster_x_total{reactor=\"0\"} 42\n");
    CHECK(t.len == strlen(buf));

    /* HELP escapes backslash and newline only; quotes stay. */
    metrics_text_init(&t, buf, sizeof(buf));
    metrics_text_family(&t, "g", "gauge", "a \"q\" \\ b\nc");
    CHECK_STR(buf, "# HELP g a \"q\" \\\\ b\\nc\n# TYPE g gauge\n");
}

static void
test_seconds(void)
{
    static const struct {
        uint64_t us;
        const char *text;
    } cases[] = {
        { 0, "s 0\n" },
        { 1, "s 0.000001\n" },
        { 1250, "s 0.00125\n" },
        { 100000, "s 0.1\n" },
        { 2000000, "s 2\n" },
        { 1000001, "s 1.000001\n" },
        { 60000000, "s 60\n" },
        { UINT64_MAX, "s 18446744073709.551615\n" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct metrics_text t;
        metrics_text_init(&t, buf, sizeof(buf));
        metrics_text_sample_seconds(&t, "s", NULL, 0, cases[i].us);
        CHECK_STR(buf, cases[i].text);
    }
}

static const char histogram_text[] =
    "h_seconds_bucket{filter=\"spf\",le=\"0.0001\"} 2\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.00025\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.0005\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.001\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.0025\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.005\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.01\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.025\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.05\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.1\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.25\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"0.5\"} 3\n"
    "h_seconds_bucket{filter=\"spf\",le=\"1\"} 4\n"
    "h_seconds_bucket{filter=\"spf\",le=\"2.5\"} 4\n"
    "h_seconds_bucket{filter=\"spf\",le=\"5\"} 4\n"
    "h_seconds_bucket{filter=\"spf\",le=\"10\"} 4\n"
    "h_seconds_bucket{filter=\"spf\",le=\"30\"} 4\n"
    "h_seconds_bucket{filter=\"spf\",le=\"60\"} 5\n"
    "h_seconds_bucket{filter=\"spf\",le=\"+Inf\"} 6\n"
    "h_seconds_sum{filter=\"spf\"} 131.000251\n"
    "h_seconds_count{filter=\"spf\"} 6\n";

static void
test_histogram_text(void)
{
    struct metrics_histogram h;
    memset(&h, 0, sizeof(h));
    metrics_histogram_observe(&h, 0);
    metrics_histogram_observe(&h, 100);      /* on the bound: counted under it */
    metrics_histogram_observe(&h, 151);
    metrics_histogram_observe(&h, 1000000);  /* 1 s */
    metrics_histogram_observe(&h, 60000000); /* 60 s, the last bound */
    metrics_histogram_observe(&h, 70000000); /* above every bound: +Inf only */
    struct metrics_buckets b;
    memset(&b, 0, sizeof(b));
    metrics_histogram_add_to(&h, &b);
    CHECK(b.count == 6);
    CHECK(b.sum_us == 131000251);
    struct metrics_text t;
    metrics_text_init(&t, buf, sizeof(buf));
    struct metrics_label label = { "filter", "spf" };
    metrics_text_histogram(&t, "h_seconds", &label, 1, &b);
    CHECK(!metrics_text_is_over(&t));
    CHECK_STR(buf, histogram_text);

    /* Adding a second histogram sums bucket by bucket. */
    metrics_histogram_add_to(&h, &b);
    CHECK(b.count == 12);
    CHECK(b.cumulative[0] == 4);
    CHECK(b.cumulative[METRICS_BOUNDS_COUNT - 1] == 10);

    /* An empty histogram without labels. */
    memset(&b, 0, sizeof(b));
    metrics_text_init(&t, buf, sizeof(buf));
    metrics_text_histogram(&t, "e", NULL, 0, &b);
    CHECK(strncmp(buf, "e_bucket{le=\"0.0001\"} 0\n", 24) == 0);
    CHECK(strstr(buf, "e_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n") != NULL);
}

static void
test_from_latency_histogram(void)
{
    static struct histogram h;
    histogram_init(&h);
    histogram_record(&h, 100);       /* its own bucket: under 0.0001 */
    histogram_record(&h, 999);       /* bucket 996..999: under 0.001 */
    histogram_record(&h, 1000);      /* bucket 1000..1003 reaches past 0.001: under 0.0025 */
    histogram_record(&h, 59000000);  /* 59 s: under 60 */
    histogram_record(&h, 60000000);  /* its bucket reaches past 60 s: +Inf */
    histogram_record(&h, 200000000); /* clamped to 100 s: +Inf */
    struct metrics_buckets b;
    memset(&b, 0, sizeof(b));
    metrics_buckets_from_histogram(&h, &b);
    CHECK(b.count == 6);
    CHECK(b.cumulative[0] == 1); /* 0.0001 */
    CHECK(b.cumulative[2] == 1); /* 0.0005 */
    CHECK(b.cumulative[3] == 2); /* 0.001 */
    CHECK(b.cumulative[4] == 3); /* 0.0025 */
    CHECK(b.cumulative[16] == 3); /* 30 */
    CHECK(b.cumulative[17] == 4); /* 60 */
    CHECK(b.sum_us == 100 + 999 + 1000 + 59000000 + 60000000 + 200000000);
    for (size_t i = 1; i < METRICS_BOUNDS_COUNT; i++) {
        CHECK(b.cumulative[i] >= b.cumulative[i - 1]);
    }
    /* Two reactors' histograms add up. */
    metrics_buckets_from_histogram(&h, &b);
    CHECK(b.count == 12);
    CHECK(b.cumulative[3] == 4);
    /* Empty. */
    histogram_init(&h);
    memset(&b, 0, sizeof(b));
    metrics_buckets_from_histogram(&h, &b);
    CHECK(b.count == 0 && b.cumulative[METRICS_BOUNDS_COUNT - 1] == 0 && b.sum_us == 0);
}

#define THREADS 4
#define OBSERVES 100000

static struct metrics_histogram shared;

static void *
observer(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < OBSERVES; i++) {
        metrics_histogram_observe(&shared, base + i % 3);
    }
    return NULL;
}

static void
test_shared_histogram(void)
{
    pthread_t threads[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, observer, (void *)(i * 1000)) == 0);
    }
    for (size_t i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    struct metrics_buckets b;
    memset(&b, 0, sizeof(b));
    metrics_histogram_add_to(&shared, &b);
    CHECK(b.count == (uint64_t)THREADS * OBSERVES);
    /* Thread 0 observes 0..2 us: all under 0.0001. */
    CHECK(b.cumulative[0] == OBSERVES);
    /* Thread 1: 1000..1002 us, one third at 1000 (under 0.001). */
    uint64_t at_1000 = (OBSERVES + 2) / 3;
    CHECK(b.cumulative[3] == OBSERVES + at_1000);
    CHECK(b.cumulative[METRICS_BOUNDS_COUNT - 1] == b.count);
}

static void
test_bounds(void)
{
    /* A document of exactly n bytes needs n + 1 (the NUL). */
    const char *want = "# HELP a b\n# TYPE a gauge\na 7\n";
    size_t n = strlen(want);
    char small[64];
    struct metrics_text t;
    metrics_text_init(&t, small, n + 1);
    metrics_text_family(&t, "a", "gauge", "b");
    metrics_text_sample(&t, "a", NULL, 0, 7);
    CHECK(!metrics_text_is_over(&t));
    CHECK_STR(small, want);
    metrics_text_init(&t, small, n);
    metrics_text_family(&t, "a", "gauge", "b");
    metrics_text_sample(&t, "a", NULL, 0, 7);
    CHECK(metrics_text_is_over(&t));
    CHECK(t.len < n);
    CHECK(strlen(small) == t.len);
    /* Once over, nothing more is written, even what would fit. */
    size_t len = t.len;
    metrics_text_sample(&t, "x", NULL, 0, 1);
    CHECK(t.len == len);

    /* A label value that escapes past METRICS_VALUE_BYTES_MAX fails the
     * document rather than being cut. */
    char value[METRICS_VALUE_BYTES_MAX + 1];
    memset(value, 'v', METRICS_VALUE_BYTES_MAX);
    value[METRICS_VALUE_BYTES_MAX] = '\0';
    metrics_text_init(&t, buf, sizeof(buf));
    struct metrics_label label = { "l", value };
    metrics_text_sample(&t, "a", &label, 1, 1);
    CHECK(metrics_text_is_over(&t));
    value[METRICS_VALUE_BYTES_MAX - 1] = '\0'; /* one shorter: fits with its NUL */
    metrics_text_init(&t, buf, sizeof(buf));
    metrics_text_sample(&t, "a", &label, 1, 1);
    CHECK(!metrics_text_is_over(&t));
}

static void
test_bounds_table(void)
{
    for (size_t i = 1; i < METRICS_BOUNDS_COUNT; i++) {
        CHECK(metrics_bounds_us[i] > metrics_bounds_us[i - 1]);
    }
    CHECK(metrics_bounds_us[METRICS_BOUNDS_COUNT - 1] <= HISTOGRAM_VALUE_MAX);
}

static void
test_reason_names(void)
{
    for (int i = 0; i < STATS_REASON_COUNT; i++) {
        const char *name = stats_reason_name((enum stats_reason)i);
        CHECK(name != NULL && name[0] != '\0');
        for (const char *p = name; *p != '\0'; p++) {
            CHECK((*p >= 'a' && *p <= 'z') || *p == '_');
        }
        for (int k = 0; k < i; k++) {
            CHECK(strcmp(name, stats_reason_name((enum stats_reason)k)) != 0);
        }
    }
    CHECK_STR(stats_reason_name(STATS_REASON_RECIPIENT_UNKNOWN), "recipient_unknown");
    CHECK_STR(stats_reason_name(STATS_REASON_COUNT), "other");
    /* The label values an operator's alerts name: fixed. */
    static const char *const names[STATS_REASON_COUNT] = {
        "recipient_unknown", "relay_denied", "rate_limit", "greylist", "spam",
        "virus", "policy", "size", "protocol", "tls_required", "internal",
        "auth_required", "auth_failed", "too_many_recipients", "mailbox_full", "other",
    };
    static_assert(STATS_REASON_COUNT == 16, "a new reason is named here too");
    for (int i = 0; i < STATS_REASON_COUNT; i++) {
        CHECK_STR(stats_reason_name((enum stats_reason)i), names[i]);
    }

    static struct reactor_stats stats;
    stats_refusal_count(&stats, "550 5.1.1 no", STATS_REASON_RECIPIENT_UNKNOWN);
    stats_refusal_count(&stats, "451 4.7.1 Greylisted", STATS_REASON_GREYLIST);
    stats_refusal_count(&stats, "451", (enum stats_reason)99);
    CHECK(stats.smtp_refused[STATS_REASON_RECIPIENT_UNKNOWN] == 1);
    CHECK(stats.smtp_deferred[STATS_REASON_GREYLIST] == 1);
    CHECK(stats.smtp_deferred[STATS_REASON_OTHER] == 1);
    CHECK(stats.smtp_refused[STATS_REASON_GREYLIST] == 0);
    stats_refusal_count(&stats, "452 4.5.3 Error: too many recipients",
                        STATS_REASON_TOO_MANY_RECIPIENTS);
    stats_refusal_count(&stats, "552 5.2.2 <a@b> Error: mailbox over quota",
                        STATS_REASON_MAILBOX_FULL);
    CHECK(stats.smtp_deferred[STATS_REASON_TOO_MANY_RECIPIENTS] == 1);
    CHECK(stats.smtp_refused[STATS_REASON_TOO_MANY_RECIPIENTS] == 0);
    CHECK(stats.smtp_refused[STATS_REASON_MAILBOX_FULL] == 1);
}

int
main(void)
{
    test_escape();
    test_samples();
    test_seconds();
    test_histogram_text();
    test_from_latency_histogram();
    test_shared_histogram();
    test_bounds();
    test_bounds_table();
    test_reason_names();
    UNIT_DONE();
}
