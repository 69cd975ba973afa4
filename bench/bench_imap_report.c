/*
 * bench/bench_imap_report.c - the IMAP response reader, counters, progress
 * line, summary and JSON of toaster-bench imap and imap-idle.
 *
 * The reader runs on the event-loop thread of its connection; the stats
 * are written by their event-loop thread and read by the monitor thread
 * (relaxed atomics, see the header); the reports run on the monitor
 * thread. Nothing here allocates. MB means 10^6 bytes.
 */
#include "bench/bench_imap_report.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "bench/bench_report.h"
#include "core/assertions.h"

static_assert(BENCH_IMAP_REPORT_LITERAL_BYTES_MAX < UINT64_MAX / 10, "brace value cannot wrap");

static void reader_reset(struct bench_imap_report_reader *reader);
static bool reader_line_byte(struct bench_imap_report_reader *reader, char ch);
static void reader_text_line_end(struct bench_imap_report_reader *reader);
static uint64_t load(const uint64_t *p);
static void json_histogram(FILE *out, const struct histogram *h);
static void summary_latency(FILE *out, const struct histogram *h);
static bool is_atom_char(char ch);
static bool word_is(const char *word, size_t word_bytes, const char *name);

void
bench_imap_report_reader_init(struct bench_imap_report_reader *reader)
{
    reader_reset(reader);
    reader->error = BENCH_IMAP_REPORT_ERROR_NONE;
}

size_t
bench_imap_report_reader_feed(struct bench_imap_report_reader *reader, const char *buf,
                              size_t buf_bytes, enum bench_imap_report_result *result_out)
{
    ASSERT(reader->error == BENCH_IMAP_REPORT_ERROR_NONE);
    if (reader->is_done) {
        reader_reset(reader);
    }
    size_t pos = 0;
    /* Each round takes at least one byte. */
    while (pos < buf_bytes) {
        if (reader->literal_left > 0) {
            size_t take = buf_bytes - pos;
            if (take > reader->literal_left) {
                take = (size_t)reader->literal_left;
            }
            reader->literal_left -= take;
            reader->literal_bytes += take;
            pos += take;
            continue;
        }
        char ch = buf[pos++];
        if (!reader_line_byte(reader, ch)) {
            *result_out = BENCH_IMAP_REPORT_ERROR;
            return pos;
        }
        if (reader->is_done) {
            *result_out = BENCH_IMAP_REPORT_DONE;
            return pos;
        }
    }
    *result_out = BENCH_IMAP_REPORT_NEED_MORE;
    return pos;
}

const char *
bench_imap_report_error_text(enum bench_imap_report_error error)
{
    switch (error) {
    case BENCH_IMAP_REPORT_ERROR_NONE:
        return "no error";
    case BENCH_IMAP_REPORT_ERROR_LINE_TOO_LONG:
        return "response longer than 16 MiB outside literals";
    case BENCH_IMAP_REPORT_ERROR_LITERAL_TOO_BIG:
        return "literal larger than 64 MiB";
    case BENCH_IMAP_REPORT_ERROR_TOO_MANY_LITERALS:
        return "more than 65536 literals in one response";
    }
    return "unknown error";
}

void
bench_imap_report_response_parse(const char *text, size_t text_bytes,
                                 struct bench_imap_report_response *out)
{
    static_assert(BENCH_IMAP_REPORT_GARBAGE == 0, "a zeroed response is GARBAGE");
    memset(out, 0, sizeof(*out));
    if (text_bytes == 0) {
        return;
    }
    if (text[0] == '+') {
        if (text_bytes == 1 || text[1] == ' ') {
            out->kind = BENCH_IMAP_REPORT_CONTINUATION;
        }
        return;
    }
    /* The first word: "*" or a tag. */
    size_t tag_bytes = 0;
    while (tag_bytes < text_bytes && text[tag_bytes] != ' ') {
        tag_bytes++;
    }
    if (tag_bytes == text_bytes || tag_bytes == 0) {
        return;
    }
    const char *rest = text + tag_bytes + 1;
    size_t rest_bytes = text_bytes - tag_bytes - 1;
    bool is_untagged = tag_bytes == 1 && text[0] == '*';
    if (!is_untagged) {
        for (size_t i = 0; i < tag_bytes; i++) {
            if (!is_atom_char(text[i]) || text[i] == '+') {
                return;
            }
        }
    }
    if (is_untagged && rest_bytes > 0 && rest[0] >= '0' && rest[0] <= '9') {
        uint64_t number = 0;
        size_t i = 0;
        while (i < rest_bytes && rest[i] >= '0' && rest[i] <= '9') {
            uint64_t digit = (uint64_t)(rest[i] - '0');
            if (number > UINT64_MAX / 10 ||
                (number == UINT64_MAX / 10 && digit > UINT64_MAX % 10)) {
                return;
            }
            number = number * 10 + digit;
            i++;
        }
        if (i == rest_bytes || rest[i] != ' ') {
            return;
        }
        out->has_number = true;
        out->number = number;
        rest += i + 1;
        rest_bytes -= i + 1;
    }
    size_t word_bytes = 0;
    while (word_bytes < rest_bytes && rest[word_bytes] != ' ' && rest[word_bytes] != '[') {
        word_bytes++;
    }
    if (word_bytes == 0) {
        memset(out, 0, sizeof(*out)); /* GARBAGE, and nothing else said */
        return;
    }
    enum bench_imap_report_status status = BENCH_IMAP_REPORT_STATUS_NONE;
    if (word_is(rest, word_bytes, "OK")) {
        status = BENCH_IMAP_REPORT_STATUS_OK;
    } else if (word_is(rest, word_bytes, "NO")) {
        status = BENCH_IMAP_REPORT_STATUS_NO;
    } else if (word_is(rest, word_bytes, "BAD")) {
        status = BENCH_IMAP_REPORT_STATUS_BAD;
    } else if (word_is(rest, word_bytes, "BYE")) {
        status = BENCH_IMAP_REPORT_STATUS_BYE;
    } else if (word_is(rest, word_bytes, "PREAUTH")) {
        status = BENCH_IMAP_REPORT_STATUS_PREAUTH;
    }
    if (is_untagged) {
        if (out->has_number && status != BENCH_IMAP_REPORT_STATUS_NONE) {
            memset(out, 0, sizeof(*out)); /* "* 3 OK" is no response */
            return;
        }
        out->kind = BENCH_IMAP_REPORT_UNTAGGED;
        out->status = status;
        out->word = rest;
        out->word_bytes = word_bytes;
        return;
    }
    if (status != BENCH_IMAP_REPORT_STATUS_OK && status != BENCH_IMAP_REPORT_STATUS_NO &&
        status != BENCH_IMAP_REPORT_STATUS_BAD) {
        return;
    }
    out->kind = BENCH_IMAP_REPORT_TAGGED;
    out->tag = text;
    out->tag_bytes = tag_bytes;
    out->status = status;
}

bool
bench_imap_report_has_atom(const char *text, size_t text_bytes, const char *name)
{
    size_t name_bytes = strlen(name);
    ASSERT(name_bytes > 0);
    for (size_t i = 0; i + name_bytes <= text_bytes; i++) {
        if (i > 0 && text[i - 1] != ' ' && text[i - 1] != '[') {
            continue;
        }
        if (strncasecmp(text + i, name, name_bytes) != 0) {
            continue;
        }
        size_t end = i + name_bytes;
        if (end == text_bytes || text[end] == ' ' || text[end] == ']') {
            return true;
        }
    }
    return false;
}

void
bench_imap_stats_init(struct bench_imap_stats *stats)
{
    memset(stats, 0, sizeof(*stats));
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        histogram_init(&stats->kinds[k].latency);
    }
}

void
bench_imap_stats_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

void
bench_imap_stats_set(uint64_t *counter, uint64_t value)
{
    __atomic_store_n(counter, value, __ATOMIC_RELAXED);
}

void
bench_imap_stats_merge(struct bench_imap_stats *dst, const struct bench_imap_stats *src)
{
    ASSERT(dst != src);
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        struct bench_imap_kind_stats *d = &dst->kinds[k];
        const struct bench_imap_kind_stats *s = &src->kinds[k];
        d->done += load(&s->done);
        d->no += load(&s->no);
        d->bad += load(&s->bad);
        d->failed += load(&s->failed);
        histogram_merge(&d->latency, &s->latency);
    }
    dst->bytes_received += load(&src->bytes_received);
    dst->connects_ok += load(&src->connects_ok);
    dst->connect_errors += load(&src->connect_errors);
    dst->timeouts += load(&src->timeouts);
    dst->closed += load(&src->closed);
    dst->protocol_errors += load(&src->protocol_errors);
    dst->login_refused += load(&src->login_refused);
    dst->select_refused += load(&src->select_refused);
    dst->bye += load(&src->bye);
    dst->sessions_without_literal_plus += load(&src->sessions_without_literal_plus);
    dst->connections_open += load(&src->connections_open);
    dst->sessions_ready += load(&src->sessions_ready);
    uint64_t last = load(&src->last_done_ns);
    if (last > dst->last_done_ns) {
        dst->last_done_ns = last;
    }
}

uint64_t
bench_imap_stats_done(const struct bench_imap_stats *stats)
{
    uint64_t done = 0;
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        done += load(&stats->kinds[k].done);
    }
    return done;
}

uint64_t
bench_imap_stats_errors(const struct bench_imap_stats *stats)
{
    uint64_t errors = 0;
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        errors +=
            load(&stats->kinds[k].no) + load(&stats->kinds[k].bad) + load(&stats->kinds[k].failed);
    }
    return errors + load(&stats->connect_errors) + load(&stats->timeouts) + load(&stats->closed) +
           load(&stats->protocol_errors) + load(&stats->login_refused) +
           load(&stats->select_refused) + load(&stats->bye);
}

void
bench_imap_report_progress(FILE *out, double elapsed_s, const struct bench_imap_stats *stats,
                           double per_s_now)
{
    struct histogram all;
    histogram_init(&all);
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        histogram_merge(&all, &stats->kinds[k].latency);
    }
    (void)fprintf(out, "\r%7.1fs %10" PRIu64 " cmds %9.1f cmds/s  p99 ", elapsed_s,
                  bench_imap_stats_done(stats), per_s_now);
    bench_report_latency(out, histogram_quantile(&all, 0.99));
    (void)fprintf(out, "  errors %" PRIu64 "  conns %" PRIu64 " ready %" PRIu64 "\033[K",
                  bench_imap_stats_errors(stats), stats->connections_open, stats->sessions_ready);
    (void)fflush(out);
}

void
bench_imap_report_summary(FILE *out, const struct bench_imap_report_info *info,
                          const struct bench_imap_stats *stats)
{
    uint64_t done = bench_imap_stats_done(stats);
    double seconds = info->seconds > 0 ? info->seconds : 1e-9;
    struct histogram all;
    histogram_init(&all);
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        histogram_merge(&all, &stats->kinds[k].latency);
    }

    (void)fprintf(out,
                  "toaster-bench imap %s: %" PRIu32 " connection%s, %" PRIu32 " thread%s, "
                  "mailbox %s, mix %s\n",
                  info->server, info->connections, info->connections == 1 ? "" : "s", info->threads,
                  info->threads == 1 ? "" : "s", info->mailbox, info->mix_text);
    (void)fprintf(out, "  commands    %" PRIu64 " ok in %.3f s: %.1f cmds/s, %.2f MB/s received\n",
                  done, info->seconds, (double)done / seconds,
                  (double)stats->bytes_received / 1e6 / seconds);
    (void)fprintf(out, "  %-20s %9s %10s %9s %9s %9s %9s %9s %7s\n", "kind", "ok", "cmds/s", "p50",
                  "p90", "p99", "p99.9", "max", "errors");
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        const struct bench_imap_kind_stats *ks = &stats->kinds[k];
        uint64_t errors = ks->no + ks->bad + ks->failed;
        if (ks->done == 0 && errors == 0) {
            continue;
        }
        (void)fprintf(out, "  %-20s %9" PRIu64 " %10.1f", bench_imap_options_kind_name(k), ks->done,
                      (double)ks->done / seconds);
        summary_latency(out, &ks->latency);
        (void)fprintf(out, " %7" PRIu64 "\n", errors);
    }
    (void)fprintf(out, "  %-20s %9" PRIu64 " %10.1f", "all", done, (double)done / seconds);
    summary_latency(out, &all);
    (void)fprintf(out, " %7" PRIu64 "\n", bench_imap_stats_errors(stats));
    (void)fprintf(out, "  (latency: command sent to its tagged OK; login: connect to SELECT OK)\n");
    (void)fprintf(out, "  connects    %" PRIu64 " ok, %" PRIu64 " failed\n", stats->connects_ok,
                  stats->connect_errors);
    (void)fprintf(out, "  errors      ");
    bool is_first = true;
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        const struct bench_imap_kind_stats *ks = &stats->kinds[k];
        const char *name = bench_imap_options_kind_name(k);
        if (ks->no > 0) {
            (void)fprintf(out, "%s%s NO: %" PRIu64, is_first ? "" : ", ", name, ks->no);
            is_first = false;
        }
        if (ks->bad > 0) {
            (void)fprintf(out, "%s%s BAD: %" PRIu64, is_first ? "" : ", ", name, ks->bad);
            is_first = false;
        }
        if (ks->failed > 0) {
            (void)fprintf(out, "%s%s lost: %" PRIu64, is_first ? "" : ", ", name, ks->failed);
            is_first = false;
        }
    }
    const struct {
        const char *name;
        uint64_t n;
    } others[] = {
        {"connect", stats->connect_errors},
        {"timeout", stats->timeouts},
        {"closed", stats->closed},
        {"protocol", stats->protocol_errors},
        {"login", stats->login_refused},
        {"select", stats->select_refused},
        {"bye", stats->bye},
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        if (others[i].n > 0) {
            (void)fprintf(out, "%s%s: %" PRIu64, is_first ? "" : ", ", others[i].name, others[i].n);
            is_first = false;
        }
    }
    (void)fprintf(out, "%s\n", is_first ? "none" : "");
    if (stats->sessions_without_literal_plus > 0) {
        (void)fprintf(out,
                      "  note        %" PRIu64 " sessions without LITERAL+: APPEND waited "
                      "for \"+\"\n",
                      stats->sessions_without_literal_plus);
    }
}

int
bench_imap_report_json(const char *path, const struct bench_imap_report_info *info,
                       const struct bench_imap_stats *stats)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return -errno;
    }
    uint64_t done = bench_imap_stats_done(stats);
    struct histogram all;
    histogram_init(&all);
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        histogram_merge(&all, &stats->kinds[k].latency);
    }
    (void)fprintf(out, "{\n  \"commands\": %" PRIu64 ",\n", done);
    (void)fprintf(out, "  \"seconds\": %.6f,\n", info->seconds);
    (void)fprintf(out, "  \"cmds_per_s\": %.3f,\n",
                  info->seconds > 0 ? (double)done / info->seconds : 0.0);
    (void)fprintf(out, "  \"bytes_received\": %" PRIu64 ",\n", stats->bytes_received);
    (void)fprintf(out, "  \"latency_us\": ");
    json_histogram(out, &all);
    (void)fprintf(out, ",\n  \"kinds\": {");
    bool is_first = true;
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        const struct bench_imap_kind_stats *ks = &stats->kinds[k];
        if (ks->done + ks->no + ks->bad + ks->failed == 0) {
            continue;
        }
        (void)fprintf(out,
                      "%s\n    \"%s\": {\"ok\": %" PRIu64 ", \"no\": %" PRIu64 ", \"bad\": %" PRIu64
                      ", \"lost\": %" PRIu64 ", \"per_s\": %.3f, "
                      "\"latency_us\": ",
                      is_first ? "" : ",", bench_imap_options_kind_name(k), ks->done, ks->no,
                      ks->bad, ks->failed,
                      info->seconds > 0 ? (double)ks->done / info->seconds : 0.0);
        json_histogram(out, &ks->latency);
        (void)fputc('}', out);
        is_first = false;
    }
    (void)fprintf(out, "\n  },\n");
    (void)fprintf(out,
                  "  \"errors\": {\"total\": %" PRIu64 ", \"connect\": %" PRIu64
                  ", \"timeout\": %" PRIu64 ", \"closed\": %" PRIu64 ", \"protocol\": %" PRIu64
                  ", \"login\": %" PRIu64 ", \"select\": %" PRIu64 ", \"bye\": %" PRIu64 "},\n",
                  bench_imap_stats_errors(stats), stats->connect_errors, stats->timeouts,
                  stats->closed, stats->protocol_errors, stats->login_refused,
                  stats->select_refused, stats->bye);
    bench_report_json_target(out, stats->connects_ok, info->server, info->connections,
                             info->threads);
    (void)fprintf(out, "  \"mix\": ");
    bench_report_json_string(out, info->mix_text);
    (void)fprintf(out, ",\n  \"mailbox\": ");
    bench_report_json_string(out, info->mailbox);
    (void)fprintf(out, ",\n");
    return bench_report_json_end(out, info->command);
}

void
bench_imap_report_idle_summary(FILE *out, const struct bench_imap_report_info *info,
                               const struct bench_imap_stats *stats,
                               const struct bench_imap_idle_result *result)
{
    (void)fprintf(out,
                  "toaster-bench imap-idle %s: %" PRIu32 " connection%s, %" PRIu32 " thread%s\n",
                  info->server, info->connections, info->connections == 1 ? "" : "s", info->threads,
                  info->threads == 1 ? "" : "s");
    (void)fprintf(out, "  idling      %" PRIu64 " of %" PRIu32 " sessions\n", result->idling,
                  result->connections);
    (void)fprintf(
        out, "  delivered   %" PRIu64 " messages (250) in %.3f s, %" PRIu64 " refused or failed\n",
        result->delivered, result->deliver_seconds, result->deliver_errors);
    (void)fprintf(out,
                  "  pushed      %" PRIu64 " of %" PRIu64 " sessions expecting one; %" PRIu64
                  " never heard\n",
                  result->heard, result->expected, result->expected - result->heard);
    (void)fprintf(out, "  push        p50 ");
    bench_report_latency(out, histogram_quantile(&result->push, 0.50));
    (void)fprintf(out, ", p99 ");
    bench_report_latency(out, histogram_quantile(&result->push, 0.99));
    (void)fprintf(out, ", max ");
    bench_report_latency(out, result->push.max_us);
    (void)fprintf(out, " (SMTP 250 to \"* n EXISTS\")\n");
    (void)fprintf(
        out,
        "  errors      %" PRIu64 " (connect %" PRIu64 ", timeout %" PRIu64 ", closed %" PRIu64
        ", protocol %" PRIu64 ", login %" PRIu64 ", select %" PRIu64 ")\n",
        bench_imap_stats_errors(stats), stats->connect_errors, stats->timeouts, stats->closed,
        stats->protocol_errors, stats->login_refused, stats->select_refused);
}

int
bench_imap_report_idle_json(const char *path, const struct bench_imap_report_info *info,
                            const struct bench_imap_stats *stats,
                            const struct bench_imap_idle_result *result)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        return -errno;
    }
    (void)fprintf(out, "{\n  \"connections\": %" PRIu32 ",\n", result->connections);
    (void)fprintf(out, "  \"idling\": %" PRIu64 ",\n", result->idling);
    (void)fprintf(out, "  \"delivered\": %" PRIu64 ",\n", result->delivered);
    (void)fprintf(out, "  \"deliver_errors\": %" PRIu64 ",\n", result->deliver_errors);
    (void)fprintf(out, "  \"deliver_seconds\": %.6f,\n", result->deliver_seconds);
    (void)fprintf(out, "  \"ready_seconds\": %.3f,\n", result->ready_seconds);
    (void)fprintf(out, "  \"expected\": %" PRIu64 ",\n", result->expected);
    (void)fprintf(out, "  \"heard\": %" PRIu64 ",\n", result->heard);
    (void)fprintf(out, "  \"never_heard\": %" PRIu64 ",\n", result->expected - result->heard);
    (void)fprintf(out, "  \"push_us\": ");
    json_histogram(out, &result->push);
    (void)fprintf(out, ",\n  \"errors\": %" PRIu64 ",\n", bench_imap_stats_errors(stats));
    (void)fprintf(out,
                  "  \"error_kinds\": {\"connect\": %" PRIu64 ", \"timeout\": %" PRIu64
                  ", \"closed\": %" PRIu64 ", \"protocol\": %" PRIu64 ", \"login\": %" PRIu64
                  ", \"select\": %" PRIu64 ", \"bye\": %" PRIu64 "},\n",
                  stats->connect_errors, stats->timeouts, stats->closed, stats->protocol_errors,
                  stats->login_refused, stats->select_refused, stats->bye);
    (void)fprintf(out, "  \"server\": ");
    bench_report_json_string(out, info->server);
    (void)fprintf(out, ",\n");
    return bench_report_json_end(out, info->command);
}

static void
reader_reset(struct bench_imap_report_reader *reader)
{
    reader->text_bytes = 0;
    reader->is_truncated = false;
    reader->is_done = false;
    reader->line_bytes = 0;
    reader->literal_bytes = 0;
    reader->literal_count = 0;
    reader->literal_left = 0;
    reader->brace_state = 0;
    reader->brace_has_digit = false;
    reader->brace_value = 0;
}

/* One byte outside a literal. Returns false on a broken limit. */
static bool
reader_line_byte(struct bench_imap_report_reader *reader, char ch)
{
    reader->line_bytes++;
    if (reader->line_bytes > BENCH_IMAP_REPORT_LINE_BYTES_MAX) {
        reader->error = BENCH_IMAP_REPORT_ERROR_LINE_TOO_LONG;
        return false;
    }
    if (ch == '\n') {
        bool is_literal = reader->brace_state >= 2;
        uint64_t value = reader->brace_value;
        reader->brace_state = 0;
        reader_text_line_end(reader);
        if (!is_literal) {
            reader->is_done = true;
            return true;
        }
        if (value > BENCH_IMAP_REPORT_LITERAL_BYTES_MAX) {
            reader->error = BENCH_IMAP_REPORT_ERROR_LITERAL_TOO_BIG;
            return false;
        }
        if (reader->literal_count == BENCH_IMAP_REPORT_LITERALS_MAX) {
            reader->error = BENCH_IMAP_REPORT_ERROR_TOO_MANY_LITERALS;
            return false;
        }
        /* The kept text shows "{n}" and goes on after the literal. */
        reader->literal_count++;
        reader->literal_left = value;
        return true;
    }
    if (reader->is_truncated) {
        /* Nothing more is kept. */
    } else if (reader->text_bytes < sizeof(reader->text)) {
        reader->text[reader->text_bytes++] = ch;
    } else {
        reader->is_truncated = true;
        reader->text_bytes = BENCH_IMAP_REPORT_KEEP_BYTES;
    }
    switch (reader->brace_state) {
    case 1:
        if (ch >= '0' && ch <= '9') {
            if (reader->brace_value <= BENCH_IMAP_REPORT_LITERAL_BYTES_MAX) {
                reader->brace_value = reader->brace_value * 10 + (uint64_t)(ch - '0');
            }
            reader->brace_has_digit = true;
            return true;
        }
        if (ch == '}' && reader->brace_has_digit) {
            reader->brace_state = 2;
            return true;
        }
        break;
    case 2:
        if (ch == '\r') {
            reader->brace_state = 3;
            return true;
        }
        break;
    default:
        break;
    }
    reader->brace_state = 0;
    if (ch == '{') {
        reader->brace_state = 1;
        reader->brace_has_digit = false;
        reader->brace_value = 0;
    }
    return true;
}

/* At a line end: drop one CR before it from the text; the one byte of
 * room past BENCH_IMAP_REPORT_KEEP_BYTES is only ever such a CR. */
static void
reader_text_line_end(struct bench_imap_report_reader *reader)
{
    if (reader->is_truncated) {
        return;
    }
    if (reader->text_bytes > 0 && reader->text[reader->text_bytes - 1] == '\r') {
        reader->text_bytes--;
    }
    if (reader->text_bytes > BENCH_IMAP_REPORT_KEEP_BYTES) {
        reader->text_bytes = BENCH_IMAP_REPORT_KEEP_BYTES;
        reader->is_truncated = true;
    }
}

static uint64_t
load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Five right-aligned latency columns: p50 p90 p99 p99.9 max. */
static void
summary_latency(FILE *out, const struct histogram *h)
{
    const uint64_t values[5] = {
        histogram_quantile(h, 0.50),
        histogram_quantile(h, 0.90),
        histogram_quantile(h, 0.99),
        histogram_quantile(h, 0.999),
        h->max_us,
    };
    for (int i = 0; i < 5; i++) {
        char cell[32];
        if (values[i] < 1000) {
            (void)snprintf(cell, sizeof(cell), "%" PRIu64 "us", values[i]);
        } else if (values[i] < 1000000) {
            (void)snprintf(cell, sizeof(cell), "%.2fms", (double)values[i] / 1e3);
        } else {
            (void)snprintf(cell, sizeof(cell), "%.3fs", (double)values[i] / 1e6);
        }
        (void)fprintf(out, " %9s", cell);
    }
}

static void
json_histogram(FILE *out, const struct histogram *h)
{
    (void)fprintf(
        out,
        "{\"count\": %" PRIu64 ", \"p50\": %" PRIu64 ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64
        ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 ", \"mean\": %.1f}",
        h->count, histogram_quantile(h, 0.50), histogram_quantile(h, 0.90),
        histogram_quantile(h, 0.99), histogram_quantile(h, 0.999), h->max_us, histogram_mean(h));
}

/* An IMAP atom character (RFC 3501 ATOM-CHAR, '+' allowed for tags is
 * excluded by the caller). */
static bool
is_atom_char(char ch)
{
    unsigned char c = (unsigned char)ch;
    return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' && c != '%' && c != '*' &&
           c != '"' && c != '\\' && c != ']';
}

static bool
word_is(const char *word, size_t word_bytes, const char *name)
{
    return strlen(name) == word_bytes && strncasecmp(word, name, word_bytes) == 0;
}
