/*
 * tests/unit/test_bench_args.c - the option value parsers toaster-bench
 * smtp and imap share (bench/bench_args.c).
 *
 * Table-driven: numbers at min - 1, min, max and max + 1; IP literals with
 * and without ports, valid, invalid and borderline; comma lists walked
 * item by item; --source lists at their bound; the usage line captured
 * from stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench_args.h"
#include "test_bench_capture.h"
#include "unit.h"

#define SOURCES_MAX 4

struct u64_case {
    const char *text;
    uint64_t min;
    uint64_t max;
    int rc;
    uint64_t value;
};

static const struct u64_case u64_cases[] = {
    {"0", 0, 10, 0, 0},
    {"9", 1, 10, 0, 9},
    {"10", 1, 10, 0, 10},
    {"11", 1, 10, -EINVAL, 0},
    {"0", 1, 10, -EINVAL, 0},
    {"18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX},
    {"18446744073709551616", 0, UINT64_MAX, -EINVAL, 0},
    {"", 0, 10, -EINVAL, 0},
    {"+1", 0, 10, -EINVAL, 0},
    {"-1", 0, 10, -EINVAL, 0},
    {" 1", 0, 10, -EINVAL, 0},
    {"1 ", 0, 10, -EINVAL, 0},
    {"1k", 0, 10, -EINVAL, 0},
};

struct double_case {
    const char *text;
    int rc;
    double value;
};

/* Range 0.001..1000, as --rate and --duration use it. */
static const struct double_case double_cases[] = {
    {"1", 0, 1.0},      {"0.5", 0, 0.5},     {".5", 0, 0.5},         {"+5", 0, 5.0},
    {"1e3", 0, 1000.0}, {"1000", 0, 1000.0}, {"1000.5", -EINVAL, 0}, {"0.001", 0, 0.001},
    {"0", -EINVAL, 0},  {"-1", -EINVAL, 0},  {"inf", -EINVAL, 0},    {"nan", -EINVAL, 0},
    {"", -EINVAL, 0},   {"1x", -EINVAL, 0},  {".", -EINVAL, 0},      {"1e999", -EINVAL, 0},
};

/* Valid: the text it gives back is the input. */
static const char *const host_port_valid[] = {"127.0.0.1:25", "1.2.3.4:65535", "[::1]:2525",
                                              "[fe80::1:2]:1"};

static const char *const host_port_invalid[] = {
    "1.2.3.4:0",
    "1.2.3.4:65536",
    "1.2.3.4",
    "1.2.3.4:",
    ":25",
    "::1:25",
    "[::1]",
    "[::1]25",
    "[]:25",
    "[1.2.3.4:25",
    "localhost:25",
    "999.1.1.1:25",
    "[0000:0000:0000:0000:0000:0000:0000:0000:0000]:25"};

/* A comma list walked item by item ("|" between items, "ERR" on error),
 * with 8-byte items. */
struct list_case {
    const char *text;
    const char *want;
};

static const struct list_case list_cases[] = {
    {"", ""},      {"a", "a"},      {"a,b", "a|b"}, {"ab,c,def", "ab|c|def"}, {"a,", "ERR"},
    {",a", "ERR"}, {"a,,b", "ERR"}, {",", "ERR"},   {"1234567", "1234567"},   {"12345678", "ERR"},
};

static void
test_u64(void)
{
    for (size_t i = 0; i < sizeof(u64_cases) / sizeof(u64_cases[0]); i++) {
        const struct u64_case *t = &u64_cases[i];
        uint64_t value = 12345;
        int rc = bench_args_u64(t->text, t->min, t->max, &value);
        CHECK(rc == t->rc);
        CHECK(value == (t->rc == 0 ? t->value : 12345));
    }
}

static void
test_double(void)
{
    for (size_t i = 0; i < sizeof(double_cases) / sizeof(double_cases[0]); i++) {
        const struct double_case *t = &double_cases[i];
        double value = -7;
        int rc = bench_args_double(t->text, 0.001, 1000, &value);
        if (rc != t->rc) {
            (void)fprintf(stderr, "  \"%s\": rc %d\n", t->text, rc);
        }
        CHECK(rc == t->rc);
        CHECK(value == (t->rc == 0 ? t->value : -7));
    }
}

static void
test_address(void)
{
    struct sockaddr_storage ss;
    socklen_t bytes = 0;

    CHECK(bench_args_address("10.0.0.1", &ss, &bytes) == 0);
    CHECK(ss.ss_family == AF_INET);
    CHECK(bytes == sizeof(struct sockaddr_in));
    CHECK(((struct sockaddr_in *)&ss)->sin_port == 0);
    CHECK(((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(0x0a000001));
    CHECK(bench_args_address("::", &ss, &bytes) == 0);
    CHECK(ss.ss_family == AF_INET6);
    CHECK(bytes == sizeof(struct sockaddr_in6));
    CHECK(bench_args_address("[::1]", &ss, &bytes) == -EINVAL);
    CHECK(bench_args_address("10.0.0", &ss, &bytes) == -EINVAL);
    CHECK(bench_args_address("", &ss, &bytes) == -EINVAL);
}

static void
test_host_port(void)
{
    struct sockaddr_storage ss;
    socklen_t bytes = 0;
    char text[64];

    for (size_t i = 0; i < sizeof(host_port_valid) / sizeof(host_port_valid[0]); i++) {
        const char *in = host_port_valid[i];
        CHECK(bench_args_host_port(in, &ss, &bytes, text, sizeof(text)) == 0);
        CHECK_STR(text, in);
        CHECK(ss.ss_family == (in[0] == '[' ? AF_INET6 : AF_INET));
    }
    for (size_t i = 0; i < sizeof(host_port_invalid) / sizeof(host_port_invalid[0]); i++) {
        int rc = bench_args_host_port(host_port_invalid[i], &ss, &bytes, text, sizeof(text));
        if (rc != -EINVAL) {
            (void)fprintf(stderr, "  \"%s\": rc %d\n", host_port_invalid[i], rc);
        }
        CHECK(rc == -EINVAL);
    }
    /* The port lands in network order; the text is cut to its buffer. */
    CHECK(bench_args_host_port("127.0.0.1:2525", &ss, &bytes, text, 8) == 0);
    CHECK(((struct sockaddr_in *)&ss)->sin_port == htons(2525));
    CHECK_STR(text, "127.0.0");
}

/* Walk text; returns the items joined by '|', or "ERR" after an error. */
static void
list_walk(const char *text, size_t item_bytes, char *out, size_t out_bytes)
{
    const char *cursor = text;
    char item[16];
    int rc;

    out[0] = '\0';
    while ((rc = bench_args_list_next(&cursor, item, item_bytes)) > 0) {
        if (out[0] != '\0') {
            (void)strncat(out, "|", out_bytes - strlen(out) - 1);
        }
        (void)strncat(out, item, out_bytes - strlen(out) - 1);
    }
    if (rc < 0) {
        (void)snprintf(out, out_bytes, "ERR");
    }
}

static void
test_list_next(void)
{
    char out[64];

    for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
        list_walk(list_cases[i].text, 8, out, sizeof(out));
        CHECK_STR(out, list_cases[i].want);
    }
}

static void
test_sources(void)
{
    struct sockaddr_storage sources[SOURCES_MAX];
    uint32_t count = 99;
    socklen_t bytes = 0;

    CHECK(bench_args_sources("127.0.0.2", AF_INET, sources, SOURCES_MAX, &count, &bytes) == 0);
    CHECK(count == 1);
    CHECK(bytes == sizeof(struct sockaddr_in));
    CHECK(bench_args_sources("1.1.1.1,1.1.1.2,1.1.1.3", AF_INET, sources, SOURCES_MAX, &count,
                             &bytes) == 0);
    CHECK(count == 3);
    CHECK(((struct sockaddr_in *)&sources[2])->sin_addr.s_addr == htonl(0x01010103));
    /* At the bound and one past it. */
    CHECK(bench_args_sources("1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4", AF_INET, sources, SOURCES_MAX,
                             &count, &bytes) == 0);
    CHECK(count == 4);
    CHECK(bench_args_sources("1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5", AF_INET, sources,
                             SOURCES_MAX, &count, &bytes) == -EINVAL);
    /* IPv6, bracketed or not; the family must be the server's. */
    CHECK(bench_args_sources("[::1],::2", AF_INET6, sources, SOURCES_MAX, &count, &bytes) == 0);
    CHECK(count == 2);
    CHECK(bytes == sizeof(struct sockaddr_in6));
    CHECK(bench_args_sources("::1", AF_INET, sources, SOURCES_MAX, &count, &bytes) == -EINVAL);
    CHECK(bench_args_sources("1.1.1.1", AF_INET6, sources, SOURCES_MAX, &count, &bytes) == -EINVAL);
    CHECK(bench_args_sources("", AF_INET, sources, SOURCES_MAX, &count, &bytes) == -EINVAL);
    CHECK(bench_args_sources("1.1.1.1,", AF_INET, sources, SOURCES_MAX, &count, &bytes) == -EINVAL);
    CHECK(bench_args_sources("1.1.1.1:25", AF_INET, sources, SOURCES_MAX, &count, &bytes) ==
          -EINVAL);
}

/* argv: command option value-or-"-" why. */
static int
usage_error_argv(int argc, char **argv, void *unused)
{
    (void)unused;
    if (argc != 4) {
        return 0;
    }
    return bench_args_usage_error(argv[0], argv[1], strcmp(argv[2], "-") == 0 ? NULL : argv[2],
                                  argv[3]);
}

static void
test_usage_error(void)
{
    char *with_value[] = {"smtp", "--threads", "99", "want 1..64", NULL};
    char *without_value[] = {"imap-idle", "--smtp", "-", "is required", NULL};

    CHECK(test_bench_run(usage_error_argv, NULL, 4, with_value) == -EINVAL);
    CHECK_STR(test_bench_captured_err, "toaster-bench smtp: --threads 99: want 1..64\n");
    CHECK(test_bench_captured_out[0] == '\0');
    CHECK(test_bench_run(usage_error_argv, NULL, 4, without_value) == -EINVAL);
    CHECK_STR(test_bench_captured_err, "toaster-bench imap-idle: --smtp is required\n");
}

int
main(void)
{
    test_u64();
    test_double();
    test_address();
    test_host_port();
    test_list_next();
    test_sources();
    test_usage_error();
    UNIT_DONE();
}
