/*
 * bench/bench_smtp_report.c - counters, progress line, summary and JSON
 * for toaster-bench smtp.
 *
 * Owns no state beyond what callers pass in. The stats are written by
 * their event-loop thread and read by the monitor thread (relaxed atomics,
 * see the header); everything else here runs on the monitor thread.
 * MB means 10^6 bytes throughout.
 */
#include "bench/bench_smtp_report.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <string.h>

#include "bench/bench_report.h"
#include "core/assertions.h"

/* Named error kinds, in the order the summary and the JSON list them. */
struct error_kind {
    const char *name;
    size_t      offset;
};

static const struct error_kind error_kinds[] = {
    {"connect", offsetof(struct bench_smtp_stats, connect_errors)},
    {"timeout", offsetof(struct bench_smtp_stats, timeouts)},
    {"closed", offsetof(struct bench_smtp_stats, closed)},
    {"protocol", offsetof(struct bench_smtp_stats, protocol_errors)},
    {"tls", offsetof(struct bench_smtp_stats, tls_errors)},
};

static uint64_t load(const uint64_t *p);
static uint64_t error_kind_count(const struct bench_smtp_stats *stats,
                                 const struct error_kind *kind);
static double mb_per_s(const struct bench_smtp_report_info *info,
                       const struct bench_smtp_stats *stats);
static double msgs_per_s(const struct bench_smtp_report_info *info,
                         const struct bench_smtp_stats *stats);

void
bench_smtp_stats_init(struct bench_smtp_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    histogram_init(&stats->latency);
}

void
bench_smtp_stats_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

void
bench_smtp_stats_set(uint64_t *counter, uint64_t value)
{
    __atomic_store_n(counter, value, __ATOMIC_RELAXED);
}

void
bench_smtp_stats_merge(struct bench_smtp_stats *dst, const struct bench_smtp_stats *src)
{
    ASSERT(dst != src);
    dst->messages_accepted += load(&src->messages_accepted);
    dst->messages_failed += load(&src->messages_failed);
    dst->bytes_accepted += load(&src->bytes_accepted);
    dst->connects_ok += load(&src->connects_ok);
    dst->connect_errors += load(&src->connect_errors);
    dst->timeouts += load(&src->timeouts);
    dst->closed += load(&src->closed);
    dst->protocol_errors += load(&src->protocol_errors);
    dst->sessions_without_pipelining += load(&src->sessions_without_pipelining);
    dst->sessions_without_chunking += load(&src->sessions_without_chunking);
    dst->tls_handshakes += load(&src->tls_handshakes);
    dst->tls_resumed += load(&src->tls_resumed);
    dst->tls_errors += load(&src->tls_errors);
    dst->connections_open += load(&src->connections_open);
    uint64_t last = load(&src->last_final_reply_ns);
    if (last > dst->last_final_reply_ns) {
        dst->last_final_reply_ns = last;
    }
    for (size_t i = 0; i < BENCH_SMTP_CODES; i++) {
        dst->codes[i] += load(&src->codes[i]);
    }
    histogram_merge(&dst->latency, &src->latency);
}

uint64_t
bench_smtp_stats_errors(const struct bench_smtp_stats *stats)
{
    uint64_t errors = 0;

    for (size_t i = 0; i < sizeof(error_kinds) / sizeof(error_kinds[0]); i++) {
        errors += error_kind_count(stats, &error_kinds[i]);
    }
    for (size_t i = 0; i < BENCH_SMTP_CODES; i++) {
        errors += load(&stats->codes[i]);
    }
    return errors;
}

void
bench_smtp_report_progress(FILE *out, double elapsed_s, const struct bench_smtp_stats *stats,
                           double msgs_per_s_now)
{
    (void)fprintf(out, "\r%7.1fs %10" PRIu64 " msgs %9.1f msgs/s  p99 ", elapsed_s,
                  stats->messages_accepted, msgs_per_s_now);
    bench_report_latency(out, histogram_quantile(&stats->latency, 0.99));
    (void)fprintf(out, "  errors %" PRIu64 "  conns %" PRIu64 "\033[K",
                  bench_smtp_stats_errors(stats), stats->connections_open);
    (void)fflush(out);
}

void
bench_smtp_report_summary(FILE *out, const struct bench_smtp_report_info *info,
                          const struct bench_smtp_stats *stats)
{
    const struct histogram *latency = &stats->latency;

    (void)fprintf(out, "toaster-bench smtp %s: %" PRIu32 " connection%s, %" PRIu32 " thread%s, "
                       "size %s, pipelining %s, %s, %s",
                  info->server, info->connections, info->connections == 1 ? "" : "s",
                  info->threads, info->threads == 1 ? "" : "s", info->size_text,
                  info->is_pipelining ? "on" : "off", info->is_bdat ? "BDAT" : "DATA",
                  info->is_starttls ? "STARTTLS, " : "");
    if (info->rate > 0) {
        (void)fprintf(out, "open loop at %.1f msgs/s\n", info->rate);
    } else {
        (void)fprintf(out, "closed loop\n");
    }
    (void)fprintf(out, "  messages    %" PRIu64 " accepted, %" PRIu64 " failed in %.3f s\n",
                  stats->messages_accepted, stats->messages_failed, info->seconds);
    (void)fprintf(out, "  throughput  %.1f msgs/s, %.2f MB/s\n", msgs_per_s(info, stats),
                  mb_per_s(info, stats));
    (void)fprintf(out, "  latency     p50 ");
    bench_report_latency(out, histogram_quantile(latency, 0.50));
    (void)fprintf(out, ", p90 ");
    bench_report_latency(out, histogram_quantile(latency, 0.90));
    (void)fprintf(out, ", p99 ");
    bench_report_latency(out, histogram_quantile(latency, 0.99));
    (void)fprintf(out, ", p99.9 ");
    bench_report_latency(out, histogram_quantile(latency, 0.999));
    (void)fprintf(out, ", max ");
    bench_report_latency(out, latency->max_us);
    (void)fprintf(out, " (end of data to final reply)\n");
    (void)fprintf(out, "  connects    %" PRIu64 " ok, %" PRIu64 " failed\n", stats->connects_ok,
                  stats->connect_errors);
    if (info->is_starttls) {
        (void)fprintf(out, "  tls         %" PRIu64 " handshakes, %" PRIu64 " resumed%s%s\n",
                      stats->tls_handshakes, stats->tls_resumed,
                      info->tls_text != NULL && info->tls_text[0] != '\0' ? ", " : "",
                      info->tls_text != NULL ? info->tls_text : "");
    }
    (void)fprintf(out, "  errors      ");
    bool is_first = true;
    for (size_t i = 0; i < BENCH_SMTP_CODES; i++) {
        if (stats->codes[i] > 0) {
            (void)fprintf(out, "%s%03zu: %" PRIu64, is_first ? "" : ", ", i, stats->codes[i]);
            is_first = false;
        }
    }
    for (size_t i = 0; i < sizeof(error_kinds) / sizeof(error_kinds[0]); i++) {
        uint64_t n = error_kind_count(stats, &error_kinds[i]);
        if (n > 0) {
            (void)fprintf(out, "%s%s: %" PRIu64, is_first ? "" : ", ", error_kinds[i].name, n);
            is_first = false;
        }
    }
    (void)fprintf(out, "%s\n", is_first ? "none" : "");
    if (stats->sessions_without_pipelining > 0) {
        (void)fprintf(out, "  note        %" PRIu64 " sessions without PIPELINING: one command "
                           "per round trip\n",
                      stats->sessions_without_pipelining);
    }
    if (stats->sessions_without_chunking > 0) {
        (void)fprintf(out, "  note        %" PRIu64 " sessions without CHUNKING: used DATA\n",
                      stats->sessions_without_chunking);
    }
}

int
bench_smtp_report_json(const char *path, const struct bench_smtp_report_info *info,
                       const struct bench_smtp_stats *stats)
{
    const struct histogram *latency = &stats->latency;
    FILE *out = fopen(path, "w");

    if (out == NULL) {
        return -errno;
    }
    (void)fprintf(out, "{\n  \"messages\": %" PRIu64 ",\n", stats->messages_accepted);
    (void)fprintf(out, "  \"failed\": %" PRIu64 ",\n", stats->messages_failed);
    (void)fprintf(out, "  \"seconds\": %.6f,\n", info->seconds);
    (void)fprintf(out, "  \"msgs_per_s\": %.3f,\n", msgs_per_s(info, stats));
    (void)fprintf(out, "  \"mb_per_s\": %.3f,\n", mb_per_s(info, stats));
    (void)fprintf(out, "  \"bytes\": %" PRIu64 ",\n", stats->bytes_accepted);
    (void)fprintf(out,
                  "  \"latency_us\": {\"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64
                  ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 ", \"mean\": %.1f},\n",
                  histogram_quantile(latency, 0.50), histogram_quantile(latency, 0.90),
                  histogram_quantile(latency, 0.99), histogram_quantile(latency, 0.999),
                  latency->max_us, histogram_mean(latency));
    (void)fprintf(out, "  \"errors\": {");
    bool is_first = true;
    for (size_t i = 0; i < BENCH_SMTP_CODES; i++) {
        if (stats->codes[i] > 0) {
            (void)fprintf(out, "%s\"%03zu\": %" PRIu64, is_first ? "" : ", ", i, stats->codes[i]);
            is_first = false;
        }
    }
    for (size_t i = 0; i < sizeof(error_kinds) / sizeof(error_kinds[0]); i++) {
        uint64_t n = error_kind_count(stats, &error_kinds[i]);
        if (n > 0) {
            (void)fprintf(out, "%s\"%s\": %" PRIu64, is_first ? "" : ", ", error_kinds[i].name, n);
            is_first = false;
        }
    }
    (void)fprintf(out, "},\n");
    bench_report_json_target(out, stats->connects_ok, info->server, info->connections,
                             info->threads);
    (void)fprintf(out, "  \"size\": ");
    bench_report_json_string(out, info->size_text);
    (void)fprintf(out, ",\n  \"pipelining\": %s,\n", info->is_pipelining ? "true" : "false");
    (void)fprintf(out, "  \"bdat\": %s,\n", info->is_bdat ? "true" : "false");
    (void)fprintf(out, "  \"starttls\": %s,\n", info->is_starttls ? "true" : "false");
    (void)fprintf(out, "  \"tls_handshakes\": %" PRIu64 ",\n", stats->tls_handshakes);
    (void)fprintf(out, "  \"tls_resumed\": %" PRIu64 ",\n", stats->tls_resumed);
    (void)fprintf(out, "  \"tls\": ");
    bench_report_json_string(out, info->tls_text != NULL ? info->tls_text : "");
    (void)fprintf(out, ",\n");
    (void)fprintf(out, "  \"rate\": %.3f,\n", info->rate);
    return bench_report_json_end(out, info->command);
}

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static uint64_t
error_kind_count(const struct bench_smtp_stats *stats, const struct error_kind *kind)
{
    return load((const uint64_t *)((const char *)stats + kind->offset));
}

static double
msgs_per_s(const struct bench_smtp_report_info *info, const struct bench_smtp_stats *stats)
{
    return info->seconds > 0 ? (double)stats->messages_accepted / info->seconds : 0.0;
}

static double
mb_per_s(const struct bench_smtp_report_info *info, const struct bench_smtp_stats *stats)
{
    return info->seconds > 0 ? (double)stats->bytes_accepted / 1e6 / info->seconds : 0.0;
}
