/*
 * core/stats.c - the stats document: JSON out (daemon), JSON in and a
 * table (toasterctl).
 *
 * Owns no state. The JSON is ours in both directions, so the reader is a
 * small purpose-built one: objects, arrays, unsigned numbers (an integer
 * part and an optional fraction), strings and the three literals, each
 * value found by its path ("reactors", 2, "bytes_in"). It is bounded in
 * length (STATS_JSON_BYTES_MAX) and depth (STATS_JSON_DEPTH_MAX), never
 * reads past the end it was given, and skips keys it does not know.
 * Runs on the daemon's control thread and in toasterctl.
 */
#include "core/stats.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "core/assertions.h"

#define STATS_KEY_BYTES 32

struct stats_field {
    const char *name;
    size_t      offset;
};

static const struct stats_field stats_reactor_fields[] = {
    { "connections_open", offsetof(struct stats_reactor, connections_open) },
    { "connections_total", offsetof(struct stats_reactor, connections_total) },
    { "connections_refused", offsetof(struct stats_reactor, connections_refused) },
    { "messages_accepted", offsetof(struct stats_reactor, messages_accepted) },
    { "messages_refused", offsetof(struct stats_reactor, messages_refused) },
    { "bytes_in", offsetof(struct stats_reactor, bytes_in) },
    { "bytes_out", offsetof(struct stats_reactor, bytes_out) },
    { "file_bytes_spliced", offsetof(struct stats_reactor, file_bytes_spliced) },
    { "file_bytes_encrypted", offsetof(struct stats_reactor, file_bytes_encrypted) },
    { "tls_handshakes", offsetof(struct stats_reactor, tls_handshakes) },
    { "sq_full", offsetof(struct stats_reactor, sq_full) },
    { "cq_overflow", offsetof(struct stats_reactor, cq_overflow) },
};
#define REACTOR_FIELD_COUNT (sizeof(stats_reactor_fields) / sizeof(stats_reactor_fields[0]))
static_assert(REACTOR_FIELD_COUNT * sizeof(uint64_t) == sizeof(struct stats_reactor),
              "every reactor counter is in the table");

static const struct stats_field stats_workers_fields[] = {
    { "threads", offsetof(struct stats_snapshot, workers.threads) },
    { "queue_depth", offsetof(struct stats_snapshot, workers.queue_depth) },
    { "jobs_done", offsetof(struct stats_snapshot, workers.jobs_done) },
};
static const struct stats_field stats_delivery_fields[] = {
    { "batches", offsetof(struct stats_snapshot, delivery.batches) },
    { "messages", offsetof(struct stats_snapshot, delivery.messages) },
    { "fsyncs", offsetof(struct stats_snapshot, delivery.fsyncs) },
};
static const struct stats_field stats_latency_fields[] = {
    { "count", offsetof(struct stats_snapshot, latency_us.count) },
    { "p50", offsetof(struct stats_snapshot, latency_us.p50) },
    { "p90", offsetof(struct stats_snapshot, latency_us.p90) },
    { "p99", offsetof(struct stats_snapshot, latency_us.p99) },
    { "p999", offsetof(struct stats_snapshot, latency_us.p999) },
    { "max", offsetof(struct stats_snapshot, latency_us.max) },
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- from the live counters ------------------------------------------------- */

void
stats_reactor_from(struct stats_reactor *out, const struct reactor_stats *stats)
{
    out->connections_open = stats_load(&stats->connections_open);
    out->connections_total = stats_load(&stats->connections_total);
    out->connections_refused = stats_load(&stats->connections_refused);
    out->messages_accepted = stats_load(&stats->messages_accepted);
    out->messages_refused = stats_load(&stats->messages_refused);
    out->bytes_in = stats_load(&stats->bytes_in);
    out->bytes_out = stats_load(&stats->bytes_out);
    out->file_bytes_spliced = stats_load(&stats->file_bytes_spliced);
    out->file_bytes_encrypted = stats_load(&stats->file_bytes_encrypted);
    out->tls_handshakes = stats_load(&stats->tls_handshakes);
    out->sq_full = stats_load(&stats->sq_full);
    out->cq_overflow = stats_load(&stats->cq_overflow);
}

const char *
stats_reason_name(enum stats_reason reason)
{
    static const char *const names[STATS_REASON_COUNT] = {
        [STATS_REASON_RECIPIENT_UNKNOWN] = "recipient_unknown",
        [STATS_REASON_RELAY_DENIED] = "relay_denied",
        [STATS_REASON_RATE_LIMIT] = "rate_limit",
        [STATS_REASON_GREYLIST] = "greylist",
        [STATS_REASON_SPAM] = "spam",
        [STATS_REASON_VIRUS] = "virus",
        [STATS_REASON_POLICY] = "policy",
        [STATS_REASON_SIZE] = "size",
        [STATS_REASON_PROTOCOL] = "protocol",
        [STATS_REASON_TLS_REQUIRED] = "tls_required",
        [STATS_REASON_INTERNAL] = "internal",
        [STATS_REASON_AUTH_REQUIRED] = "auth_required",
        [STATS_REASON_AUTH_FAILED] = "auth_failed",
        [STATS_REASON_TOO_MANY_RECIPIENTS] = "too_many_recipients",
        [STATS_REASON_MAILBOX_FULL] = "mailbox_full",
        [STATS_REASON_OTHER] = "other",
    };
    if ((unsigned)reason >= STATS_REASON_COUNT) {
        return "other";
    }
    ASSERT(names[reason] != NULL);
    return names[reason];
}

void
stats_latency_from(struct stats_snapshot *snapshot, const struct histogram *histogram)
{
    snapshot->latency_us.count = histogram->count;
    snapshot->latency_us.p50 = histogram_quantile(histogram, 0.50);
    snapshot->latency_us.p90 = histogram_quantile(histogram, 0.90);
    snapshot->latency_us.p99 = histogram_quantile(histogram, 0.99);
    snapshot->latency_us.p999 = histogram_quantile(histogram, 0.999);
    snapshot->latency_us.max = histogram->count > 0 ? histogram->max_us : 0;
}

void
stats_reactors_total(const struct stats_snapshot *snapshot, struct stats_reactor *out)
{
    memset(out, 0, sizeof(*out));
    ASSERT(snapshot->reactor_count <= STATS_REACTORS_MAX);
    for (uint32_t i = 0; i < snapshot->reactor_count; i++) {
        const uint64_t *src = (const uint64_t *)&snapshot->reactors[i];
        uint64_t *dst = (uint64_t *)out;
        for (size_t f = 0; f < REACTOR_FIELD_COUNT; f++) {
            dst[f] += src[f];
        }
    }
}

/* ---- JSON out -------------------------------------------------------------- */

struct stats_writer {
    char  *out;
    size_t out_bytes;
    size_t len;
    bool   is_full;
};

static void __attribute__((format(printf, 2, 3)))
writer_add(struct stats_writer *w, const char *fmt, ...)
{
    if (w->is_full) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->out + w->len, w->out_bytes - w->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= w->out_bytes - w->len) {
        w->is_full = true;
        return;
    }
    w->len += (size_t)n;
}

static void
writer_fields(struct stats_writer *w, const void *base, const struct stats_field *fields,
              size_t count, bool is_first)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t value;
        memcpy(&value, (const char *)base + fields[i].offset, sizeof(value));
        writer_add(w, "%s\"%s\":%" PRIu64, is_first && i == 0 ? "" : ",", fields[i].name, value);
    }
}

int
stats_json_format(const struct stats_snapshot *snapshot, char *out, size_t out_bytes)
{
    ASSERT(out_bytes > 0);
    ASSERT(snapshot->reactor_count <= STATS_REACTORS_MAX);
    struct stats_writer w = { .out = out, .out_bytes = out_bytes };
    /* The version is ours, but a document must stay JSON whatever it holds. */
    char version[STATS_VERSION_BYTES];
    size_t n = 0;
    for (const char *p = snapshot->version; *p != '\0' && n + 1 < sizeof(version); p++) {
        version[n++] = (*p < 0x20 || *p == '"' || *p == '\\' || *p == 0x7f) ? '?' : *p;
    }
    version[n] = '\0';
    writer_add(&w, "{\"version\":\"%s\",\"uptime_s\":%" PRIu64 ",\"reactors\":[", version,
               snapshot->uptime_s);
    for (uint32_t i = 0; i < snapshot->reactor_count; i++) {
        writer_add(&w, "%s{\"index\":%" PRIu32, i ? "," : "", i);
        writer_fields(&w, &snapshot->reactors[i], stats_reactor_fields, REACTOR_FIELD_COUNT, false);
        writer_add(&w, "}");
    }
    writer_add(&w, "],\"workers\":{");
    writer_fields(&w, snapshot, stats_workers_fields, COUNT_OF(stats_workers_fields), true);
    writer_add(&w, "},\"delivery\":{");
    writer_fields(&w, snapshot, stats_delivery_fields, COUNT_OF(stats_delivery_fields), true);
    /* Rounded to two places: a ratio for people, not for sums. */
    uint64_t batches = snapshot->delivery.batches;
    uint64_t per_batch_x100 =
        batches > 0 ? (snapshot->delivery.messages * 100 + batches / 2) / batches : 0;
    writer_add(&w, ",\"messages_per_batch\":%" PRIu64 ".%02" PRIu64 "},\"latency_us\":{",
               per_batch_x100 / 100, per_batch_x100 % 100);
    writer_fields(&w, snapshot, stats_latency_fields, COUNT_OF(stats_latency_fields), true);
    writer_add(&w, "}}\n");
    if (w.is_full) {
        out[0] = '\0';
        return -ENOSPC;
    }
    return (int)w.len;
}

/* ---- JSON in --------------------------------------------------------------- */

/* One step of the path to the value being read: a key or an array index. */
struct stats_path_step {
    char     key[STATS_KEY_BYTES]; /* "" for a key too long to be one we know */
    uint32_t index;
    bool     is_index; /* an array element: index, not key */
};

struct stats_reader {
    const char            *p;
    const char            *end;
    struct stats_snapshot *snapshot;
    struct stats_path_step path[STATS_JSON_DEPTH_MAX];
};

static int reader_value(struct stats_reader *r, uint32_t depth);

static void
reader_space(struct stats_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
        r->p++;
    }
}

static bool
reader_take(struct stats_reader *r, char c)
{
    reader_space(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

/* A string; its bytes (escapes kept as they are, control characters
 * dropped) go to out when out is not NULL, truncated to fit. */
static int
reader_string(struct stats_reader *r, char *out, size_t out_bytes)
{
    if (!reader_take(r, '"')) {
        return -EINVAL;
    }
    size_t n = 0;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p++;
        if (c == '\\') {
            if (r->p == r->end) {
                return -EINVAL;
            }
            c = *r->p++; /* the escaped character stands for itself here */
        }
        if (out != NULL && n + 1 < out_bytes && (unsigned char)c >= 0x20) {
            out[n++] = c;
        }
    }
    if (r->p == r->end) {
        return -EINVAL;
    }
    r->p++; /* the closing quote */
    if (out != NULL) {
        out[n] = '\0';
    }
    return 0;
}

static uint64_t *
reader_fields_find(void *base, const struct stats_field *fields, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(fields[i].name, key) == 0) {
            return (uint64_t *)((char *)base + fields[i].offset);
        }
    }
    return NULL;
}

/* Where a number at this path goes, or NULL when nobody wants it. */
static uint64_t *
reader_target(struct stats_reader *r, uint32_t depth)
{
    struct stats_snapshot *s = r->snapshot;
    const char *top = r->path[0].key;
    if (depth == 1 && strcmp(top, "uptime_s") == 0) {
        return &s->uptime_s;
    }
    if (depth == 2 && strcmp(top, "workers") == 0) {
        return reader_fields_find(s, stats_workers_fields, COUNT_OF(stats_workers_fields),
                                  r->path[1].key);
    }
    if (depth == 2 && strcmp(top, "delivery") == 0) {
        return reader_fields_find(s, stats_delivery_fields, COUNT_OF(stats_delivery_fields),
                                  r->path[1].key);
    }
    if (depth == 2 && strcmp(top, "latency_us") == 0) {
        return reader_fields_find(s, stats_latency_fields, COUNT_OF(stats_latency_fields),
                                  r->path[1].key);
    }
    if (depth == 3 && strcmp(top, "reactors") == 0 && r->path[1].is_index) {
        /* The array index was checked against STATS_REACTORS_MAX on entry. */
        return reader_fields_find(&s->reactors[r->path[1].index], stats_reactor_fields,
                                  REACTOR_FIELD_COUNT, r->path[2].key);
    }
    return NULL;
}

/* An unsigned number: digits, optionally '.' and more digits (the
 * fraction is read and dropped: only messages_per_batch has one, and it is
 * recomputed from the counters). */
static int
reader_number(struct stats_reader *r, uint32_t depth)
{
    uint64_t value = 0;
    const char *start = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        uint64_t digit = (uint64_t)(*r->p - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return -EINVAL;
        }
        value = value * 10 + digit;
        r->p++;
    }
    if (r->p == start) {
        return -EINVAL;
    }
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        const char *fraction = r->p;
        while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
            r->p++;
        }
        if (r->p == fraction) {
            return -EINVAL;
        }
    }
    uint64_t *target = reader_target(r, depth);
    if (target != NULL) {
        *target = value;
    }
    return 0;
}

static int
reader_literal(struct stats_reader *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) {
        return -EINVAL;
    }
    r->p += n;
    return 0;
}

static int
reader_object(struct stats_reader *r, uint32_t depth)
{
    ASSERT(depth < STATS_JSON_DEPTH_MAX);
    if (reader_take(r, '}')) {
        return 0;
    }
    /* Each member consumes at least one byte, so this ends with the text. */
    for (;;) {
        struct stats_path_step *step = &r->path[depth];
        char key[STATS_KEY_BYTES + 1];
        int rc = reader_string(r, key, sizeof(key));
        if (rc != 0) {
            return rc;
        }
        /* A key longer than any we know cannot be one we want. */
        if (strlen(key) >= STATS_KEY_BYTES) {
            key[0] = '\0';
        }
        memcpy(step->key, key, STATS_KEY_BYTES);
        step->key[STATS_KEY_BYTES - 1] = '\0';
        step->index = 0;
        step->is_index = false;
        if (!reader_take(r, ':')) {
            return -EINVAL;
        }
        if (depth == 0 && strcmp(key, "version") == 0) {
            reader_space(r);
            rc = reader_string(r, r->snapshot->version, sizeof(r->snapshot->version));
        } else if (depth == 0 && strcmp(key, "error") == 0) {
            reader_space(r);
            rc = reader_string(r, r->snapshot->error, sizeof(r->snapshot->error));
            if (rc == 0 && r->snapshot->error[0] == '\0') {
                (void)snprintf(r->snapshot->error, sizeof(r->snapshot->error), "unknown error");
            }
        } else {
            rc = reader_value(r, depth + 1);
        }
        if (rc != 0) {
            return rc;
        }
        if (reader_take(r, '}')) {
            return 0;
        }
        if (!reader_take(r, ',')) {
            return -EINVAL;
        }
    }
}

static int
reader_array(struct stats_reader *r, uint32_t depth)
{
    ASSERT(depth < STATS_JSON_DEPTH_MAX);
    if (reader_take(r, ']')) {
        return 0;
    }
    bool is_reactors = depth == 1 && strcmp(r->path[0].key, "reactors") == 0;
    for (uint32_t index = 0;; index++) {
        struct stats_path_step *step = &r->path[depth];
        step->key[0] = '\0';
        step->index = index;
        step->is_index = true;
        if (is_reactors) {
            if (index >= STATS_REACTORS_MAX) {
                return -EINVAL;
            }
            r->snapshot->reactor_count = index + 1;
        }
        int rc = reader_value(r, depth + 1);
        if (rc != 0) {
            return rc;
        }
        if (reader_take(r, ']')) {
            return 0;
        }
        if (!reader_take(r, ',')) {
            return -EINVAL;
        }
    }
}

/* A value whose containers are depth deep (0: the document itself). */
static int
reader_value(struct stats_reader *r, uint32_t depth)
{
    reader_space(r);
    if (r->p == r->end) {
        return -EINVAL;
    }
    char c = *r->p;
    if (depth == 0 && c != '{') {
        return -EINVAL; /* the document is an object */
    }
    if (c == '{' || c == '[') {
        if (depth >= STATS_JSON_DEPTH_MAX) {
            return -EINVAL;
        }
        r->p++;
        return c == '{' ? reader_object(r, depth) : reader_array(r, depth);
    }
    if (c == '"') {
        return reader_string(r, NULL, 0);
    }
    if (c >= '0' && c <= '9') {
        return reader_number(r, depth);
    }
    if (c == 't') {
        return reader_literal(r, "true");
    }
    if (c == 'f') {
        return reader_literal(r, "false");
    }
    if (c == 'n') {
        return reader_literal(r, "null");
    }
    return -EINVAL;
}

int
stats_json_parse(const char *text, size_t len, struct stats_snapshot *snapshot)
{
    memset(snapshot, 0, sizeof(*snapshot));
    if (len > STATS_JSON_BYTES_MAX) {
        return -EINVAL;
    }
    struct stats_reader r = { .p = text, .end = text + len, .snapshot = snapshot };
    int rc = reader_value(&r, 0);
    if (rc == 0) {
        reader_space(&r);
        if (r.p != r.end) {
            rc = -EINVAL; /* one document, nothing after it */
        }
    }
    if (rc != 0) {
        memset(snapshot, 0, sizeof(*snapshot));
    }
    return rc;
}

/* ---- the table ------------------------------------------------------------- */

/* 1234 -> "1234", 123456 -> "120.6K": binary units, one decimal. */
static const char *
human(uint64_t value, char *buf, size_t buf_bytes)
{
    static const char units[] = "KMGTPE";
    if (value < 10000) {
        (void)snprintf(buf, buf_bytes, "%" PRIu64, value);
        return buf;
    }
    double scaled = (double)value / 1024.0;
    size_t unit = 0;
    while (scaled >= 1000.0 && unit + 1 < sizeof(units) - 1) {
        scaled /= 1024.0;
        unit++;
    }
    (void)snprintf(buf, buf_bytes, "%.1f%c", scaled, units[unit]);
    return buf;
}

/* Per-second rate of a counter between two snapshots, 0 when it went
 * backwards (the daemon restarted in between). */
static uint64_t
rate(uint64_t now, uint64_t before, double interval_s)
{
    if (now < before || interval_s <= 0.0) {
        return 0;
    }
    return (uint64_t)((double)(now - before) / interval_s + 0.5);
}

static void
table_row(FILE *out, const char *label, const struct stats_reactor *now,
          const struct stats_reactor *before, double interval_s)
{
    char b[4][32];
    (void)fprintf(out,
                  "%-8s %6" PRIu64 " %8" PRIu64 " %7" PRIu64 " %9" PRIu64 " %8" PRIu64
                  " %9s %9s %7" PRIu64 " %6" PRIu64,
                  label, now->connections_open, now->connections_total, now->connections_refused,
                  now->messages_accepted, now->messages_refused,
                  human(now->bytes_in, b[0], sizeof(b[0])),
                  human(now->bytes_out, b[1], sizeof(b[1])), now->sq_full, now->cq_overflow);
    if (before != NULL) {
        (void)fprintf(
            out, " %7" PRIu64 " %8s %8s",
            rate(now->messages_accepted + now->messages_refused,
                 before->messages_accepted + before->messages_refused, interval_s),
            human(rate(now->bytes_in, before->bytes_in, interval_s), b[2], sizeof(b[2])),
            human(rate(now->bytes_out, before->bytes_out, interval_s), b[3], sizeof(b[3])));
    }
    (void)fputc('\n', out);
}

void
stats_table_print(FILE *out, const struct stats_snapshot *s, const struct stats_snapshot *prev,
                  double interval_s)
{
    ASSERT(s->reactor_count <= STATS_REACTORS_MAX);
    if (prev != NULL && prev->reactor_count != s->reactor_count) {
        prev = NULL; /* a restart with another reactor count: no rates this time */
    }
    uint64_t up = s->uptime_s;
    char days[32] = "";
    if (up >= 86400) {
        (void)snprintf(days, sizeof(days), "%" PRIu64 "d ", up / 86400);
    }
    (void)fprintf(out,
                  "toasterd %s, up %s%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 ", %" PRIu32
                  " reactor%s\n\n",
                  s->version[0] ? s->version : "?", days, up / 3600 % 24, up / 60 % 60, up % 60,
                  s->reactor_count, s->reactor_count == 1 ? "" : "s");
    (void)fprintf(out, "%-8s %6s %8s %7s %9s %8s %9s %9s %7s %6s", "reactor", "open", "conns",
                  "refused", "msgs ok", "msgs bad", "bytes in", "bytes out", "sq full", "cq ovf");
    if (prev != NULL) {
        (void)fprintf(out, " %7s %8s %8s", "msgs/s", "in/s", "out/s");
    }
    (void)fputc('\n', out);
    for (uint32_t i = 0; i < s->reactor_count; i++) {
        char label[16];
        (void)snprintf(label, sizeof(label), "%" PRIu32, i);
        table_row(out, label, &s->reactors[i], prev ? &prev->reactors[i] : NULL, interval_s);
    }
    struct stats_reactor total;
    struct stats_reactor prev_total;
    stats_reactors_total(s, &total);
    if (prev != NULL) {
        stats_reactors_total(prev, &prev_total);
    }
    table_row(out, "total", &total, prev ? &prev_total : NULL, interval_s);

    (void)fprintf(out, "\nworkers   %" PRIu64 " threads, %" PRIu64 " jobs queued, %" PRIu64 " done",
                  s->workers.threads, s->workers.queue_depth, s->workers.jobs_done);
    if (prev != NULL) {
        (void)fprintf(out, ", %" PRIu64 "/s",
                      rate(s->workers.jobs_done, prev->workers.jobs_done, interval_s));
    }
    uint64_t batches = s->delivery.batches;
    uint64_t per_x100 = batches > 0 ? (s->delivery.messages * 100 + batches / 2) / batches : 0;
    (void)fprintf(out,
                  "\ndelivery  %" PRIu64 " messages in %" PRIu64 " syncs (%" PRIu64 ".%02" PRIu64
                  " messages/sync), %" PRIu64 " fsync calls",
                  s->delivery.messages, batches, per_x100 / 100, per_x100 % 100,
                  s->delivery.fsyncs);
    if (prev != NULL) {
        (void)fprintf(out, ", %" PRIu64 " syncs/s",
                      rate(batches, prev->delivery.batches, interval_s));
    }
    (void)fprintf(out,
                  "\nlatency   end of data to reply, %" PRIu64 " messages: p50 %" PRIu64
                  " us, p90 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64
                  " us\n",
                  s->latency_us.count, s->latency_us.p50, s->latency_us.p90, s->latency_us.p99,
                  s->latency_us.p999, s->latency_us.max);
}
