/*
 * core/metrics_text.c - the Prometheus text exposition format into a
 * bounded buffer, and the shared fixed-bound histogram (see
 * metrics_text.h).
 *
 * Owns nothing: the caller's buffer, the caller's histograms. Any thread.
 * Limits: the buffer the caller gives (a sample that does not fit ends
 * the document, marked over), METRICS_LABELS_MAX labels per sample,
 * METRICS_VALUE_BYTES_MAX per escaped value.
 */
#include "core/metrics_text.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"

const uint64_t metrics_bounds_us[METRICS_BOUNDS_COUNT] = {
    100,     250,     500,      1000,     2500,     5000,     10000,    25000,    50000,
    100000,  250000,  500000,   1000000,  2500000,  5000000,  10000000, 30000000, 60000000,
};

static_assert(METRICS_BOUNDS_COUNT == 18, "the bounds table has 18 entries");
static_assert(METRICS_LABELS_MAX >= 2, "a histogram has one label besides le");

/* ---- the buffer ---------------------------------------------------------- */

void
metrics_text_init(struct metrics_text *text, char *buf, size_t cap)
{
    ASSERT(buf != NULL);
    ASSERT(cap > 0);
    text->buf = buf;
    text->cap = cap;
    text->len = 0;
    text->is_over = false;
    buf[0] = '\0';
}

bool
metrics_text_is_over(const struct metrics_text *text)
{
    return text->is_over;
}

/* Append bytes; once one piece does not fit, nothing more is written. The
 * buffer stays NUL-terminated. */
static void
put(struct metrics_text *text, const char *bytes, size_t len)
{
    if (text->is_over) {
        return;
    }
    if (len >= text->cap - text->len) {
        text->is_over = true;
        return;
    }
    memcpy(text->buf + text->len, bytes, len);
    text->len += len;
    text->buf[text->len] = '\0';
}

static void
put_string(struct metrics_text *text, const char *s)
{
    put(text, s, strlen(s));
}

static void
put_u64(struct metrics_text *text, uint64_t value)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, value);
    ASSERT(n > 0 && (size_t)n < sizeof(digits));
    put(text, digits, (size_t)n);
}

/* Microseconds as seconds, exact, without trailing zeros: 1250 ->
 * "0.00125", 2000000 -> "2", 0 -> "0". */
static void
put_seconds(struct metrics_text *text, uint64_t value_us)
{
    char digits[40];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64 ".%06" PRIu64, value_us / 1000000,
                     value_us % 1000000);
    ASSERT(n > 0 && (size_t)n < sizeof(digits));
    size_t len = (size_t)n;
    while (digits[len - 1] == '0') {
        len--;
    }
    if (digits[len - 1] == '.') {
        len--;
    }
    put(text, digits, len);
}

/* Names are ours: assert their shape rather than escape them. */
static bool
name_is_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        bool is_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c >= '0' && c <= '9') || c == '_' || c == ':';
        if (!is_ok) {
            return false;
        }
    }
    return true;
}

int
metrics_label_escape(const char *value, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    size_t len = 0;
    for (const char *p = value; *p != '\0'; p++) {
        char pair[2];
        size_t n = 1;
        pair[0] = *p;
        if (*p == '\\' || *p == '"') {
            pair[0] = '\\';
            pair[1] = *p;
            n = 2;
        } else if (*p == '\n') {
            pair[0] = '\\';
            pair[1] = 'n';
            n = 2;
        }
        if (len + n >= out_bytes) {
            out[0] = '\0';
            return -ENOSPC;
        }
        memcpy(out + len, pair, n);
        len += n;
    }
    out[len] = '\0';
    return (int)len;
}

/* HELP text: only backslash and newline are escaped there. */
static void
put_help(struct metrics_text *text, const char *help)
{
    for (const char *p = help; *p != '\0'; p++) {
        if (*p == '\\') {
            put(text, "\\\\", 2);
        } else if (*p == '\n') {
            put(text, "\\n", 2);
        } else {
            put(text, p, 1);
        }
    }
}

static void
put_labels(struct metrics_text *text, const struct metrics_label *labels, size_t label_count,
           const char *le)
{
    ASSERT(label_count <= METRICS_LABELS_MAX);
    if (label_count == 0 && le == NULL) {
        return;
    }
    put(text, "{", 1);
    for (size_t i = 0; i < label_count; i++) {
        ASSERT(name_is_valid(labels[i].name));
        ASSERT(strcmp(labels[i].name, "le") != 0);
        char escaped[METRICS_VALUE_BYTES_MAX];
        if (metrics_label_escape(labels[i].value, escaped, sizeof(escaped)) < 0) {
            text->is_over = true; /* not ours to cut a value short: fail the document */
            return;
        }
        if (i > 0) {
            put(text, ",", 1);
        }
        put_string(text, labels[i].name);
        put(text, "=\"", 2);
        put_string(text, escaped);
        put(text, "\"", 1);
    }
    if (le != NULL) {
        if (label_count > 0) {
            put(text, ",", 1);
        }
        put(text, "le=\"", 4);
        put_string(text, le);
        put(text, "\"", 1);
    }
    put(text, "}", 1);
}

/* ---- families and samples ------------------------------------------------ */

void
metrics_text_family(struct metrics_text *text, const char *name, const char *type,
                    const char *help)
{
    ASSERT(name_is_valid(name));
    ASSERT(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0 ||
           strcmp(type, "histogram") == 0);
    put(text, "# HELP ", 7);
    put_string(text, name);
    put(text, " ", 1);
    put_help(text, help);
    put(text, "\n# TYPE ", 8);
    put_string(text, name);
    put(text, " ", 1);
    put_string(text, type);
    put(text, "\n", 1);
}

void
metrics_text_sample(struct metrics_text *text, const char *name,
                    const struct metrics_label *labels, size_t label_count, uint64_t value)
{
    ASSERT(name_is_valid(name));
    put_string(text, name);
    put_labels(text, labels, label_count, NULL);
    put(text, " ", 1);
    put_u64(text, value);
    put(text, "\n", 1);
}

void
metrics_text_sample_seconds(struct metrics_text *text, const char *name,
                            const struct metrics_label *labels, size_t label_count,
                            uint64_t value_us)
{
    ASSERT(name_is_valid(name));
    put_string(text, name);
    put_labels(text, labels, label_count, NULL);
    put(text, " ", 1);
    put_seconds(text, value_us);
    put(text, "\n", 1);
}

/* name + suffix into out (our names are short). */
static void
name_with(char *out, size_t out_bytes, const char *name, const char *suffix)
{
    int n = snprintf(out, out_bytes, "%s%s", name, suffix);
    ASSERT(n > 0 && (size_t)n < out_bytes);
}

void
metrics_text_histogram(struct metrics_text *text, const char *name,
                       const struct metrics_label *labels, size_t label_count,
                       const struct metrics_buckets *buckets)
{
    ASSERT(name_is_valid(name));
    ASSERT(label_count < METRICS_LABELS_MAX);
    char series[128];
    name_with(series, sizeof(series), name, "_bucket");
    for (size_t i = 0; i < METRICS_BOUNDS_COUNT; i++) {
        /* The bound in seconds, as put_seconds writes it. */
        struct metrics_text le_text;
        char le[32];
        metrics_text_init(&le_text, le, sizeof(le));
        put_seconds(&le_text, metrics_bounds_us[i]);
        ASSERT(!le_text.is_over);
        if (i > 0) {
            ASSERT(buckets->cumulative[i] >= buckets->cumulative[i - 1]);
        }
        put_string(text, series);
        put_labels(text, labels, label_count, le);
        put(text, " ", 1);
        put_u64(text, buckets->cumulative[i]);
        put(text, "\n", 1);
    }
    ASSERT(buckets->count >= buckets->cumulative[METRICS_BOUNDS_COUNT - 1]);
    put_string(text, series);
    put_labels(text, labels, label_count, "+Inf");
    put(text, " ", 1);
    put_u64(text, buckets->count);
    put(text, "\n", 1);
    name_with(series, sizeof(series), name, "_sum");
    metrics_text_sample_seconds(text, series, labels, label_count, buckets->sum_us);
    name_with(series, sizeof(series), name, "_count");
    metrics_text_sample(text, series, labels, label_count, buckets->count);
}

/* ---- histograms ------------------------------------------------------------ */

/* Index of the first bound >= value, or METRICS_BOUNDS_COUNT (+Inf). */
static size_t
bound_index(uint64_t value_us)
{
    size_t i = 0;
    while (i < METRICS_BOUNDS_COUNT && value_us > metrics_bounds_us[i]) {
        i++;
    }
    return i;
}

void
metrics_histogram_observe(struct metrics_histogram *histogram, uint64_t value_us)
{
    size_t i = bound_index(value_us);
    __atomic_fetch_add(&histogram->buckets[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&histogram->sum_us, value_us, __ATOMIC_RELAXED);
    __atomic_fetch_add(&histogram->count, 1, __ATOMIC_RELAXED);
}

void
metrics_histogram_add_to(const struct metrics_histogram *histogram,
                         struct metrics_buckets *buckets)
{
    /* The count is the bucket sum, so the +Inf bucket always equals it
     * even while other threads record. */
    uint64_t running = 0;
    for (size_t i = 0; i < METRICS_BOUNDS_COUNT; i++) {
        running += __atomic_load_n(&histogram->buckets[i], __ATOMIC_RELAXED);
        buckets->cumulative[i] += running;
    }
    running += __atomic_load_n(&histogram->buckets[METRICS_BOUNDS_COUNT], __ATOMIC_RELAXED);
    buckets->count += running;
    buckets->sum_us += __atomic_load_n(&histogram->sum_us, __ATOMIC_RELAXED);
}

void
metrics_buckets_from_histogram(const struct histogram *histogram, struct metrics_buckets *buckets)
{
    uint64_t running = 0;
    size_t bound = 0;
    for (uint32_t i = 0; i < HISTOGRAM_BUCKET_COUNT; i++) {
        uint64_t high = histogram_bucket_high(i);
        /* Close every bound this bucket's values may lie above. */
        while (bound < METRICS_BOUNDS_COUNT && high > metrics_bounds_us[bound]) {
            buckets->cumulative[bound] += running;
            bound++;
        }
        running += __atomic_load_n(&histogram->buckets[i], __ATOMIC_RELAXED);
    }
    while (bound < METRICS_BOUNDS_COUNT) {
        buckets->cumulative[bound] += running;
        bound++;
    }
    buckets->count += running;
    buckets->sum_us += __atomic_load_n(&histogram->sum_us, __ATOMIC_RELAXED);
}
