/*
 * tests/unit/test_stats.c - the stats document that travels over the
 * control socket: stats_json_format() and stats_json_parse() round-trip
 * every counter, the reader refuses what is not such a document (truncated
 * at every byte, too deep, too many reactors, overflowing numbers) without
 * reading past its input, skips unknown keys, and the table prints totals
 * and rates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stats.h"
#include "tests/unit/unit.h"

static struct stats_snapshot sample;
static struct stats_snapshot parsed;
static char text[STATS_JSON_BYTES_MAX];

static void
sample_fill(struct stats_snapshot *s, uint32_t reactor_count)
{
    memset(s, 0, sizeof(*s));
    (void)snprintf(s->version, sizeof(s->version), "1.2.3");
    s->uptime_s = 93784; /* 1d 02:03:04 */
    s->reactor_count = reactor_count;
    for (uint32_t i = 0; i < reactor_count; i++) {
        struct stats_reactor *r = &s->reactors[i];
        r->connections_open = i + 1;
        r->connections_total = 1000 + i;
        r->connections_refused = 3 * i;
        r->messages_accepted = 500 + i;
        r->messages_refused = 7 + i;
        r->bytes_in = UINT64_C(123456789012) + i;
        r->bytes_out = 4096 + i;
        r->sq_full = 11 + i;
        r->cq_overflow = i;
    }
    s->workers.threads = 4;
    s->workers.queue_depth = 9;
    s->workers.jobs_done = 1003;
    s->delivery.batches = 3;
    s->delivery.messages = 10;
    s->delivery.fsyncs = 17;
    s->latency_us.count = 1003;
    s->latency_us.p50 = 4200;
    s->latency_us.p90 = 9000;
    s->latency_us.p99 = 16000;
    s->latency_us.p999 = 40000;
    s->latency_us.max = UINT64_MAX;
}

static int
parse_text(const char *t)
{
    return stats_json_parse(t, strlen(t), &parsed);
}

static void
test_round_trip(void)
{
    sample_fill(&sample, 3);
    int len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    CHECK((size_t)len == strlen(text));
    CHECK(text[len - 1] == '\n');
    CHECK(strchr(text, '\n') == text + len - 1); /* one line: --watch --json prints lines */
    CHECK(strstr(text, "\"messages_per_batch\":3.33") != NULL);
    CHECK(strstr(text, "{\"index\":2,\"connections_open\":3,") != NULL);
    CHECK(stats_json_parse(text, (size_t)len, &parsed) == 0);
    CHECK(memcmp(&parsed, &sample, sizeof(sample)) == 0);

    /* No reactors and an empty delivery history still make a document. */
    sample_fill(&sample, 0);
    sample.delivery.batches = 0;
    len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    CHECK(strstr(text, "\"reactors\":[]") != NULL);
    CHECK(strstr(text, "\"messages_per_batch\":0.00") != NULL);
    CHECK(stats_json_parse(text, (size_t)len, &parsed) == 0);
    CHECK(memcmp(&parsed, &sample, sizeof(sample)) == 0);

    /* Every reactor the daemon may have fits in one document. */
    sample_fill(&sample, STATS_REACTORS_MAX);
    len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    CHECK(stats_json_parse(text, (size_t)len, &parsed) == 0);
    CHECK(parsed.reactor_count == STATS_REACTORS_MAX);
    CHECK(memcmp(&parsed, &sample, sizeof(sample)) == 0);
}

static void
test_format_bounds(void)
{
    sample_fill(&sample, 2);
    char small[64];
    CHECK(stats_json_format(&sample, small, sizeof(small)) == -ENOSPC);
    CHECK(small[0] == '\0');
    int len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    /* Exactly enough room (the NUL included) fits, one byte less does not. */
    char *exact = malloc((size_t)len + 1);
    CHECK(exact != NULL);
    if (exact != NULL) {
        CHECK(stats_json_format(&sample, exact, (size_t)len + 1) == len);
        CHECK(stats_json_format(&sample, exact, (size_t)len) == -ENOSPC);
        free(exact);
    }
    /* A version that is not plain text cannot break the document. */
    (void)snprintf(sample.version, sizeof(sample.version), "1\"2\\3\n");
    len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    CHECK(stats_json_parse(text, (size_t)len, &parsed) == 0);
    CHECK_STR(parsed.version, "1?2?3?");
}

/* Every prefix of a valid document is refused, and the reader never looks
 * past the length it is given (each prefix is copied to its own heap block,
 * so ASan sees a read beyond it). */
static void
test_truncated(void)
{
    sample_fill(&sample, 2);
    int len = stats_json_format(&sample, text, sizeof(text));
    CHECK(len > 0);
    /* The final newline is whitespace: dropping it still parses. */
    for (int cut = 0; cut < len - 1; cut++) {
        char *copy = malloc((size_t)cut + 1);
        if (copy == NULL) {
            CHECK(false);
            return;
        }
        memcpy(copy, text, (size_t)cut);
        int rc = stats_json_parse(copy, (size_t)cut, &parsed);
        if (rc != -EINVAL) {
            (void)fprintf(stderr, "prefix of %d bytes parsed\n", cut);
        }
        CHECK(rc == -EINVAL);
        CHECK(parsed.reactor_count == 0); /* a failed parse leaves nothing half-filled */
        free(copy);
    }
}

static void
test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "   ",
        "[]",
        "42",
        "\"stats\"",
        "{",
        "{\"uptime_s\"}",
        "{\"uptime_s\":}",
        "{\"uptime_s\":-1}",
        "{\"uptime_s\":1.}",
        "{\"uptime_s\":.5}",
        "{\"uptime_s\":1e3}",
        "{\"uptime_s\":18446744073709551616}", /* 2^64 */
        "{\"uptime_s\":1,}",
        "{\"uptime_s\":1 \"x\":2}",
        "{\"uptime_s\":tru}",
        "{\"uptime_s\":1}{}",
        "{\"uptime_s\":1} x",
        "{uptime_s:1}",
        "{\"reactors\":[{\"bytes_in\":1},]}",
        "{\"reactors\":[{\"bytes_in\":1}",
        "{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", /* five containers deep */
        "{\"a\":\"unterminated}",
        "{\"a\":\"escape at end\\",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_text(bad[i]);
        if (rc != -EINVAL) {
            (void)fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        CHECK(rc == -EINVAL);
    }
    /* Four containers deep is the limit: allowed, and skipped since nobody
     * wants what is in there. */
    CHECK(parse_text("{\"a\":{\"b\":{\"c\":[1]}}}") == 0);
    CHECK(parse_text("{\"a\":[[[1,2],[]],{}]}") == 0);
    CHECK(parse_text("{\"a\":[[[[1]]]]}") == -EINVAL);
    /* 2^64 - 1 is the largest counter. */
    CHECK(parse_text("{\"uptime_s\":18446744073709551615}") == 0);
    CHECK(parsed.uptime_s == UINT64_MAX);
    /* Longer than a document may be. */
    size_t huge_len = STATS_JSON_BYTES_MAX + 1;
    char *huge = malloc(huge_len);
    CHECK(huge != NULL);
    if (huge != NULL) {
        memset(huge, ' ', huge_len);
        huge[0] = '{';
        huge[huge_len - 1] = '}';
        CHECK(stats_json_parse(huge, huge_len, &parsed) == -EINVAL);
        CHECK(stats_json_parse(huge, huge_len - 1 - 1, &parsed) == -EINVAL); /* no '}' */
        huge[huge_len - 2] = '}';
        CHECK(stats_json_parse(huge, huge_len - 1, &parsed) == 0); /* exactly the maximum */
        free(huge);
    }
}

static void
test_reactor_limit(void)
{
    /* STATS_REACTORS_MAX reactors fit; one more is refused, not written
     * past the array. */
    size_t bytes = 64 + (STATS_REACTORS_MAX + 1) * 24;
    char *doc = malloc(bytes);
    CHECK(doc != NULL);
    if (doc == NULL) {
        return;
    }
    for (uint32_t count = STATS_REACTORS_MAX; count <= STATS_REACTORS_MAX + 1; count++) {
        size_t n = (size_t)snprintf(doc, bytes, "{\"reactors\":[");
        for (uint32_t i = 0; i < count; i++) {
            n += (size_t)snprintf(doc + n, bytes - n, "%s{\"sq_full\":%u}", i ? "," : "", i);
        }
        n += (size_t)snprintf(doc + n, bytes - n, "]}");
        CHECK(n < bytes);
        int rc = stats_json_parse(doc, n, &parsed);
        if (count == STATS_REACTORS_MAX) {
            CHECK(rc == 0);
            CHECK(parsed.reactor_count == STATS_REACTORS_MAX);
            CHECK(parsed.reactors[STATS_REACTORS_MAX - 1].sq_full == STATS_REACTORS_MAX - 1);
        } else {
            CHECK(rc == -EINVAL);
        }
    }
    free(doc);
}

static void
test_unknown_and_error(void)
{
    /* Keys and shapes a newer daemon may add are skipped. */
    CHECK(parse_text("{\"version\":\"9.9\",\"new_thing\":{\"x\":[1,\"two\",true,null]},"
                     "\"reactors\":[{\"index\":0,\"bytes_in\":5,\"new_counter\":7}],"
                     "\"workers\":{\"threads\":2,\"zzz\":1},\"uptime_s\":12.5,"
                     "\"a_key_that_is_much_longer_than_any_we_know_of\":3}") == 0);
    CHECK_STR(parsed.version, "9.9");
    CHECK(parsed.reactor_count == 1);
    CHECK(parsed.reactors[0].bytes_in == 5);
    CHECK(parsed.workers.threads == 2);
    CHECK(parsed.uptime_s == 12);
    CHECK(parsed.error[0] == '\0');
    /* A counter in the wrong place is not taken for another. */
    CHECK(parse_text("{\"reactors\":{\"x\":{\"bytes_in\":5}},\"bytes_in\":6,"
                     "\"workers\":[{\"threads\":3}]}") == 0);
    CHECK(parsed.reactor_count == 0);
    CHECK(parsed.reactors[0].bytes_in == 0);
    CHECK(parsed.workers.threads == 0);
    /* The daemon's error answer. */
    CHECK(parse_text("{\"error\":\"unknown command\"}\n") == 0);
    CHECK_STR(parsed.error, "unknown command");
    CHECK(parse_text("{\"error\":\"\"}") == 0);
    CHECK(parsed.error[0] != '\0');
    /* A long error is cut to fit, never overflows. */
    char doc[STATS_ERROR_BYTES * 3];
    int n = snprintf(doc, sizeof(doc), "{\"error\":\"%0*d\"}", STATS_ERROR_BYTES * 2, 0);
    CHECK(n > 0 && (size_t)n < sizeof(doc));
    CHECK(parse_text(doc) == 0);
    CHECK(strlen(parsed.error) == STATS_ERROR_BYTES - 1);
}

static void
test_table(void)
{
    sample_fill(&sample, 2);
    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    stats_table_print(f, &sample, NULL, 0.0);
    CHECK(fclose(f) == 0);
    CHECK(strstr(out, "toasterd 1.2.3, up 1d 02:03:04, 2 reactors\n") != NULL);
    CHECK(strstr(out, "msgs ok") != NULL);
    CHECK(strstr(out, "msgs/s") == NULL); /* rates only with a previous snapshot */
    /* total: 3 open, 2001 connections, 3 refused, 1001 ok, 15 refused. */
    CHECK(strstr(out, "\ntotal         3     2001       3      1001       15 ") != NULL);
    CHECK(strstr(out, "230.0G") != NULL); /* 2 x 123456789012 bytes in */
    CHECK(strstr(out, "4 threads, 9 jobs queued, 1003 done") != NULL);
    CHECK(strstr(out, "10 messages in 3 syncs (3.33 messages/sync), 17 fsync calls") != NULL);
    CHECK(strstr(out, "1003 messages: p50 4200 us, p90 9000 us, p99 16000 us") != NULL);
    free(out);

    /* --watch: rates from the difference over the interval. */
    struct stats_snapshot before = sample;
    for (uint32_t i = 0; i < 2; i++) {
        sample.reactors[i].messages_accepted += 100;
        sample.reactors[i].bytes_in += 2048 * 10;
    }
    sample.delivery.batches += 20;
    out = NULL;
    f = open_memstream(&out, &out_len);
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    stats_table_print(f, &sample, &before, 2.0);
    CHECK(fclose(f) == 0);
    CHECK(strstr(out, "msgs/s") != NULL);
    /* total: 200 messages and 40960 bytes in 2 s. */
    CHECK(strstr(out, "     100    20.0K") != NULL);
    CHECK(strstr(out, ", 10 syncs/s") != NULL);
    free(out);

    /* Counters that went backwards (a restart) give 0, not a huge rate. */
    out = NULL;
    f = open_memstream(&out, &out_len);
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    stats_table_print(f, &before, &sample, 1.0);
    CHECK(fclose(f) == 0);
    CHECK(strstr(out, ", 0 syncs/s") != NULL);
    free(out);
}

int
main(void)
{
    test_round_trip();
    test_format_bounds();
    test_truncated();
    test_malformed();
    test_reactor_limit();
    test_unknown_and_error();
    test_table();
    UNIT_DONE();
}
