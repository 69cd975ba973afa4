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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench_report.h"
#include "unit.h"

static void
test_latency(void)
{
    static const struct {
        uint64_t    us;
        const char *want;
    } cases[] = {
        {0, "0 us"},           {999, "999 us"},         {1000, "1.00 ms"},
        {1255, "1.25 ms"},     {999999, "1000.00 ms"},  {1000000, "1.000 s"},
        {2500000, "2.500 s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = NULL;
        size_t bytes = 0;
        FILE *out = open_memstream(&text, &bytes);
        CHECK(out != NULL);
        if (out == NULL) {
            return;
        }
        bench_report_latency(out, cases[i].us);
        CHECK(fclose(out) == 0);
        CHECK_STR(text, cases[i].want);
        free(text);
    }
}

static void
test_json_string(void)
{
    static const struct {
        const char *s;
        const char *want;
    } cases[] = {
        {"", "\"\""},
        {"127.0.0.1:25", "\"127.0.0.1:25\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"a\\b", "\"a\\\\b\""},
        {"tab\there\n", "\"tab\\u0009here\\u000a\""},
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""}, /* UTF-8 passes as it is */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = NULL;
        size_t bytes = 0;
        FILE *out = open_memstream(&text, &bytes);
        CHECK(out != NULL);
        if (out == NULL) {
            return;
        }
        bench_report_json_string(out, cases[i].s);
        CHECK(fclose(out) == 0);
        CHECK_STR(text, cases[i].want);
        free(text);
    }
}

static void
test_json_target_and_end(void)
{
    char *text = NULL;
    size_t bytes = 0;
    FILE *out = open_memstream(&text, &bytes);
    CHECK(out != NULL);
    if (out == NULL) {
        return;
    }
    (void)fputs("{\n", out);
    bench_report_json_target(out, 7, "[::1]:25", 100, 4);
    CHECK(bench_report_json_end(out, "toaster-bench smtp --json 'a b'") == 0);
    CHECK_STR(text, "{\n"
                    "  \"connects\": 7,\n"
                    "  \"server\": \"[::1]:25\",\n"
                    "  \"connections\": 100,\n"
                    "  \"threads\": 4,\n"
                    "  \"command\": \"toaster-bench smtp --json 'a b'\"\n"
                    "}\n");
    free(text);
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
    test_latency();
    test_json_string();
    test_json_target_and_end();
    test_json_end_error();
    UNIT_DONE();
}
