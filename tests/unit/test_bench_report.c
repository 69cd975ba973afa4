/*
 * tests/unit/test_bench_report.c - the report-writing pieces toaster-bench
 * smtp and imap share (bench/bench_report.c).
 *
 * Each call writes into a memory stream and the text is compared exactly:
 * latencies at the unit boundaries (999 us, 1 ms, 999.999 ms, 1 s), JSON
 * escaping of quotes, backslashes and control bytes, and the target and
 * closing fields the bench scripts parse.
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_report.h"
#include "unit.h"

/* A memory stream and what was written to it. */
struct text {
    char *data;
    size_t bytes;
    FILE *out;
};

static bool
text_open(struct text *t)
{
    t->data = NULL;
    t->bytes = 0;
    t->out = open_memstream(&t->data, &t->bytes);
    CHECK(t->out != NULL);
    return t->out != NULL;
}

/* Close t (unless the call under test did) and compare what was written
 * with want. */
static void
text_check(struct text *t, bool is_closed, const char *want)
{
    if (!is_closed) {
        CHECK(fclose(t->out) == 0);
    }
    CHECK_STR(t->data, want);
    free(t->data);
}

/* A latency (s NULL) or a JSON string, and what it is written as. */
struct write_case {
    uint64_t us;
    const char *s;
    const char *want;
};

static const struct write_case write_cases[] = {
    /* Latencies at the unit boundaries. */
    {0, NULL, "0 us"},
    {999, NULL, "999 us"},
    {1000, NULL, "1.00 ms"},
    {1255, NULL, "1.25 ms"},
    {999999, NULL, "1000.00 ms"},
    {1000000, NULL, "1.000 s"},
    {2500000, NULL, "2.500 s"},
    /* JSON strings: quotes, backslashes and control bytes escaped, UTF-8
     * passed as it is. */
    {0, "", "\"\""},
    {0, "127.0.0.1:25", "\"127.0.0.1:25\""},
    {0, "say \"hi\"", "\"say \\\"hi\\\"\""},
    {0, "a\\b", "\"a\\\\b\""},
    {0, "tab\there\n", "\"tab\\u0009here\\u000a\""},
    {0, "caf\xc3\xa9", "\"caf\xc3\xa9\""},
};

static void
test_latency_and_json_string(void)
{
    for (size_t i = 0; i < sizeof(write_cases) / sizeof(write_cases[0]); i++) {
        const struct write_case *c = &write_cases[i];
        struct text t;
        if (!text_open(&t)) {
            return;
        }
        if (c->s == NULL) {
            bench_report_latency(t.out, c->us);
        } else {
            bench_report_json_string(t.out, c->s);
        }
        text_check(&t, false, c->want);
    }
}

static void
test_json_target_and_end(void)
{
    struct text t;
    if (!text_open(&t)) {
        return;
    }
    (void)fputs("{\n", t.out);
    bench_report_json_target(t.out, 7, "[::1]:25", 100, 4);
    CHECK(bench_report_json_end(t.out, "toaster-bench smtp --json 'a b'") == 0);
    text_check(&t, true,
               "{\n"
               "  \"connects\": 7,\n"
               "  \"server\": \"[::1]:25\",\n"
               "  \"connections\": 100,\n"
               "  \"threads\": 4,\n"
               "  \"command\": \"toaster-bench smtp --json 'a b'\"\n"
               "}\n");
}

/* A stream that cannot take the bytes: the end reports the loss. */
static void
test_json_end_error(void)
{
    char buf[4];
    FILE *out = fmemopen(buf, sizeof(buf), "w");
    CHECK(out != NULL);
    if (out == NULL) {
        return;
    }
    (void)setvbuf(out, NULL, _IONBF, 0);
    CHECK(bench_report_json_end(out, "a long command that does not fit") < 0);
}

int
main(void)
{
    test_latency_and_json_string();
    test_json_target_and_end();
    test_json_end_error();
    UNIT_DONE();
}
