/*
 * tests/unit/test_bench_imap.c - toaster-bench imap's command line, mix
 * and users-file line (bench/bench_imap_options.c) and its IMAP response
 * reader and response classifier (bench/bench_imap_report.c).
 *
 * Options are parsed from argvs of their own with stdout and stderr
 * captured, bounds tried at max - 1, max and max + 1. The reader is fed
 * table-driven server output whole, one byte at a time and split at every
 * byte boundary, and must give the same responses each way; limits
 * (64 MiB literal, 16 MiB of line, 65536 literals) are tried at max and
 * max + 1 with literal bytes that are counted, never stored.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_imap_options.h"
#include "bench/bench_imap_report.h"
#include "test_bench_capture.h"
#include "unit.h"

#define RESPONSES_MAX 8

/* bench_imap_options_parse() behind the capture's void * signature. */
static int
parse_imap(int argc, char **argv, void *options)
{
    return bench_imap_options_parse(argc, argv, options);
}

/* bench_imap_options_parse() on command followed by the NULL-terminated
 * arguments; output captured. */
static int
parse(struct bench_imap_options *options, const char *command, ...)
{
    va_list ap;
    va_start(ap, command);
    int rc = test_bench_parse(parse_imap, options, command, ap);
    va_end(ap);
    return rc;
}

static bool
is_usage_error(int rc, const char *option)
{
    return test_bench_is_usage_error(rc, "toaster-bench imap", option);
}

static bool
is_ok(int rc)
{
    return test_bench_is_ok(rc);
}

static void
test_defaults(void)
{
    struct bench_imap_options o;
    struct bench_imap_mix mix;

    CHECK(is_ok(parse(&o, "imap", "--port", "1143", NULL)));
    CHECK(o.mode == BENCH_IMAP_MODE_COMMANDS);
    CHECK_STR(o.server_text, "127.0.0.1:1143");
    CHECK(o.connections == 10);
    CHECK(o.threads == 1);
    CHECK(o.count == 10000);
    CHECK(o.duration_s == 0);
    CHECK(o.users_path == NULL);
    CHECK_STR(o.user_pattern, "user%d@example.test");
    CHECK_STR(o.password, "x");
    CHECK(o.user_count == 100);
    CHECK_STR(o.mailbox, "INBOX");
    CHECK(o.timeout_s == 60);
    CHECK(o.source_count == 0);
    CHECK(o.json_path == NULL);
    bench_imap_options_mix_default(&mix);
    CHECK(memcmp(&mix, &o.mix, sizeof(mix)) == 0);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_FETCH_HEADERS] == 40);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_FETCH_BODY] == 20);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_FETCH_BODYSTRUCTURE] == 10);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_SEARCH] == 10);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_STORE] == 10);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_APPEND] == 5);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_NOOP] == 5);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_LOGIN] == 0);
    CHECK(o.mix.weight_total == 100);

    CHECK(is_ok(parse(&o, "imap-idle", "--port", "1143", "--smtp", "127.0.0.1:2525", NULL)));
    CHECK(o.mode == BENCH_IMAP_MODE_IDLE);
    CHECK(o.count == 0);
    CHECK(o.deliver_count == 100);
    CHECK(o.push_timeout_s == 30);
    CHECK_STR(o.smtp_text, "127.0.0.1:2525");

    CHECK(parse(&o, "imap", "--help", NULL) == BENCH_IMAP_OPTIONS_HELP);
    CHECK(strstr(test_bench_captured_out, "usage: toaster-bench imap ") != NULL);
    CHECK(parse(&o, "imap-idle", "-h", NULL) == BENCH_IMAP_OPTIONS_HELP);
    CHECK(strstr(test_bench_captured_out, "usage: toaster-bench imap-idle") != NULL);
}

static void
test_values(void)
{
    struct bench_imap_options o;

    CHECK(
        is_ok(parse(&o, "imap", "--host", "::1", "--port", "143", "--connections", "100",
                    "--threads", "4", "--duration", "2.5", "--mix", "noop=1,login=3", "--mailbox",
                    "Archive/2025", "--timeout", "5", "--json", "/tmp/x.json", "--quiet", "--seed",
                    "7", "--user-pattern", "u%d", "--password", "pw", "--user-count", "5", NULL)));
    CHECK_STR(o.server_text, "[::1]:143");
    CHECK(o.connections == 100);
    CHECK(o.threads == 4);
    CHECK(o.duration_s == 2.5);
    CHECK(o.count == 0);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_NOOP] == 1);
    CHECK(o.mix.weights[BENCH_IMAP_KIND_LOGIN] == 3);
    CHECK(o.mix.weight_total == 4);
    CHECK_STR(o.mix_text, "noop=1,login=3");
    CHECK_STR(o.mailbox, "Archive/2025");
    CHECK(o.timeout_s == 5);
    CHECK_STR(o.json_path, "/tmp/x.json");
    CHECK(o.is_quiet);
    CHECK(o.seed == 7);
    CHECK_STR(o.user_pattern, "u%d");
    CHECK_STR(o.password, "pw");
    CHECK(o.user_count == 5);

    /* One fixed name without --user-count: one user. */
    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--user-pattern", "a@b", NULL)));
    CHECK(o.user_count == 1);
    CHECK(is_ok(
        parse(&o, "imap", "--port", "1", "--user-pattern", "a@b", "--user-count", "9", NULL)));
    CHECK(o.user_count == 9);

    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--users", "/etc/toaster/users", NULL)));
    CHECK_STR(o.users_path, "/etc/toaster/users");
    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--source", "127.0.0.2,127.0.0.3", NULL)));
    CHECK(o.source_count == 2);

    CHECK(is_ok(parse(&o, "imap-idle", "--port", "1143", "--smtp", "[::1]:25", "--host", "::1",
                      "--deliver-count", "10000000", "--push-timeout", "3600", "--connections",
                      "100000", NULL)));
    CHECK_STR(o.smtp_text, "[::1]:25");
    CHECK(o.deliver_count == 10000000);
    CHECK(o.push_timeout_s == 3600);
    CHECK(o.connections == 100000);
}

/* A numeric option at max - 1, max and max + 1 (and 0 and 1). */
struct bound_case {
    const char *command;
    const char *option;
    const char *value;
    bool is_valid;
};

static void
test_bounds(void)
{
    static const struct bound_case cases[] = {
        {"imap", "--port", "0", false},
        {"imap", "--port", "1", true},
        {"imap", "--port", "65534", true},
        {"imap", "--port", "65535", true},
        {"imap", "--port", "65536", false},
        {"imap", "--port", "-1", false},
        {"imap", "--port", "12x", false},
        {"imap", "--connections", "0", false},
        {"imap", "--connections", "1", true},
        {"imap", "--connections", "99999", true},
        {"imap", "--connections", "100000", true},
        {"imap", "--connections", "100001", false},
        {"imap", "--threads", "0", false},
        {"imap", "--threads", "63", true},
        {"imap", "--threads", "64", true},
        {"imap", "--threads", "65", false},
        {"imap", "--user-count", "0", false},
        {"imap", "--user-count", "9999999", true},
        {"imap", "--user-count", "10000000", true},
        {"imap", "--user-count", "10000001", false},
        {"imap", "--timeout", "0", false},
        {"imap", "--timeout", "3599", true},
        {"imap", "--timeout", "3600", true},
        {"imap", "--timeout", "3601", false},
        {"imap", "--count", "0", false},
        {"imap", "--count", "1", true},
        {"imap", "--duration", "0", false},
        {"imap", "--duration", "0.001", true},
        {"imap", "--duration", "2592000", true},
        {"imap", "--duration", "2592001", false},
        {"imap", "--duration", "nan", false},
        {"imap", "--seed", "18446744073709551615", true},
        {"imap", "--seed", "18446744073709551616", false},
        {"imap-idle", "--deliver-count", "0", false},
        {"imap-idle", "--deliver-count", "9999999", true},
        {"imap-idle", "--deliver-count", "10000000", true},
        {"imap-idle", "--deliver-count", "10000001", false},
        {"imap-idle", "--push-timeout", "0", false},
        {"imap-idle", "--push-timeout", "3600", true},
        {"imap-idle", "--push-timeout", "3601", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct bound_case *bc = &cases[i];
        struct bench_imap_options o;
        /* --threads above the default 10 connections needs more of them. */
        const char *conns = strcmp(bc->option, "--connections") == 0 ? "--quiet" : "--connections";
        const char *conns_value = strcmp(bc->option, "--connections") == 0 ? "--quiet" : "64";
        int rc;
        if (strcmp(bc->option, "--port") == 0) {
            rc = parse(&o, bc->command, "--smtp", "127.0.0.1:25", bc->option, bc->value, NULL);
            if (strcmp(bc->command, "imap") == 0) {
                rc = parse(&o, bc->command, bc->option, bc->value, NULL);
            }
        } else if (strcmp(bc->command, "imap-idle") == 0) {
            rc = parse(&o, bc->command, "--port", "1", "--smtp", "127.0.0.1:25", bc->option,
                       bc->value, NULL);
        } else {
            rc = parse(&o, bc->command, "--port", "1", conns, conns_value, bc->option, bc->value,
                       NULL);
        }
        if (bc->is_valid) {
            CHECK(is_ok(rc));
        } else {
            CHECK(is_usage_error(rc, bc->option));
        }
        if (bc->is_valid != (rc == 0)) {
            (void)fprintf(stderr, "  case %zu: %s %s %s\n", i, bc->command, bc->option, bc->value);
        }
    }
}

/* n letters and a NUL. */
static void
text_of(char *buf, size_t n)
{
    memset(buf, 'a', n);
    buf[n] = '\0';
}

static void
test_invalid(void)
{
    struct bench_imap_options o;
    char long_text[300];

    CHECK(is_usage_error(parse(&o, "imap", NULL), "--port"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", NULL), "--port"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--bogus", NULL), "--bogus"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "stray", NULL), "stray"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--host", "localhost", NULL), "--host"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--host", "1.2.3.4.5", NULL), "--host"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--count", "5", "--duration", "1", NULL),
                         "--count"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--threads", "11", NULL), "--threads"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--users", "f", "--password", "p", NULL),
                         "--users"));
    CHECK(is_usage_error(
        parse(&o, "imap", "--port", "1", "--users", "f", "--user-pattern", "u%d", NULL),
        "--users"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--mix", "noop=0", NULL), "--mix"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--source", "::1", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--source", "127.0.0.1,", NULL),
                         "--source"));
    CHECK(
        is_usage_error(parse(&o, "imap", "--port", "1", "--smtp", "127.0.0.1:25", NULL), "--smtp"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--deliver-count", "5", NULL),
                         "--deliver-count"));
    CHECK(is_usage_error(parse(&o, "imap-idle", "--port", "1", NULL), "--smtp"));
    CHECK(is_usage_error(parse(&o, "imap-idle", "--port", "1", "--smtp", "127.0.0.1", NULL),
                         "--smtp"));
    CHECK(is_usage_error(
        parse(&o, "imap-idle", "--port", "1", "--smtp", "127.0.0.1:25", "--count", "5", NULL),
        "--count"));
    CHECK(is_usage_error(
        parse(&o, "imap-idle", "--port", "1", "--smtp", "127.0.0.1:25", "--mix", "noop=1", NULL),
        "--mix"));

    /* Names that cannot go into a quoted string, and lengths. */
    static const char *const bad_patterns[] = {"",     "u%d%d", "u%s", "u%",
                                               "a\"b", "a\\b",  "a b", "a\tb"};
    for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++) {
        CHECK(is_usage_error(
            parse(&o, "imap", "--port", "1", "--user-pattern", bad_patterns[i], NULL),
            "--user-pattern"));
    }
    text_of(long_text, 127);
    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--user-pattern", long_text, NULL)));
    text_of(long_text, 128);
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--user-pattern", long_text, NULL),
                         "--user-pattern"));
    text_of(long_text, 255);
    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--password", long_text, NULL)));
    text_of(long_text, 256);
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--password", long_text, NULL),
                         "--password"));
    CHECK(
        is_usage_error(parse(&o, "imap", "--port", "1", "--password", "a\"b", NULL), "--password"));
    text_of(long_text, 199);
    CHECK(is_ok(parse(&o, "imap", "--port", "1", "--mailbox", long_text, NULL)));
    text_of(long_text, 200);
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--mailbox", long_text, NULL),
                         "--mailbox"));
    CHECK(is_usage_error(parse(&o, "imap", "--port", "1", "--mailbox", "", NULL), "--mailbox"));
    CHECK(
        is_usage_error(parse(&o, "imap", "--port", "1", "--mailbox", "a\x01b", NULL), "--mailbox"));
}

struct mix_case {
    const char *text;
    int rc;
};

static void
test_mix(void)
{
    static const struct mix_case cases[] = {
        {"noop=1", 0},
        {"login=1", 0},
        {"fetch-headers=40,fetch-body=20,fetch-bodystructure=10,search=10,store=10,append=5,"
         "noop=5,login=0",
         0},
        {"fetch-headers=0,noop=1", 0},
        {"append=1000000", 0},
        {"append=999999,store=1", 0},
        {"", -EINVAL},
        {"noop", -EINVAL},
        {"noop=", -EINVAL},
        {"=1", -EINVAL},
        {"noop=-1", -EINVAL},
        {"noop=+1", -EINVAL},
        {"noop=1000001", -EINVAL},
        {"noop=1,noop=2", -EINVAL},
        {"noop=0", -EINVAL},
        {"noop=0,login=0", -EINVAL},
        {"bogus=1", -EINVAL},
        {"NOOP=1", -EINVAL},
        {"noop=1x", -EINVAL},
        {"noop=1,", -EINVAL},
        {",noop=1", -EINVAL},
        {"noop=1,,search=1", -EINVAL},
        {"noop=1;search=1", -EINVAL},
        {"fetch-headers=00000000000000000000000000000000000000000000000000000000000000001",
         -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bench_imap_mix mix;
        int rc = bench_imap_options_mix(cases[i].text, &mix);
        CHECK(rc == cases[i].rc);
        if (rc != cases[i].rc) {
            (void)fprintf(stderr, "  mix \"%s\": rc %d\n", cases[i].text, rc);
        }
    }

    /* Every name parses to its kind and picks only it. */
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        char text[64];
        struct bench_imap_mix mix;
        (void)snprintf(text, sizeof(text), "%s=3", bench_imap_options_kind_name(k));
        CHECK(bench_imap_options_mix(text, &mix) == 0);
        CHECK(mix.weights[k] == 3);
        CHECK(mix.weight_total == 3);
        for (uint64_t r = 0; r < 10; r++) {
            CHECK(bench_imap_options_mix_pick(&mix, r) == (enum bench_imap_kind)k);
        }
    }

    /* Picks follow the weights exactly over one cycle of r. */
    struct bench_imap_mix mix;
    CHECK(bench_imap_options_mix(
              "fetch-headers=40,fetch-body=20,fetch-bodystructure=10,search=10,store=10,"
              "append=5,noop=5",
              &mix) == 0);
    uint64_t counts[BENCH_IMAP_KIND_COUNT] = {0};
    for (uint64_t r = 0; r < mix.weight_total; r++) {
        counts[bench_imap_options_mix_pick(&mix, r + 1000 * mix.weight_total)]++;
    }
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        CHECK(counts[k] == mix.weights[k]);
    }
    /* Boundaries: fetch-headers=2,noop=1 -> r%3 0,1 headers; 2 noop. */
    CHECK(bench_imap_options_mix("fetch-headers=2,noop=1", &mix) == 0);
    CHECK(bench_imap_options_mix_pick(&mix, 0) == BENCH_IMAP_KIND_FETCH_HEADERS);
    CHECK(bench_imap_options_mix_pick(&mix, 1) == BENCH_IMAP_KIND_FETCH_HEADERS);
    CHECK(bench_imap_options_mix_pick(&mix, 2) == BENCH_IMAP_KIND_NOOP);
    CHECK(bench_imap_options_mix_pick(&mix, 3) == BENCH_IMAP_KIND_FETCH_HEADERS);
    CHECK(bench_imap_options_mix_pick(&mix, UINT64_MAX) ==
          (UINT64_MAX % 3 == 2 ? BENCH_IMAP_KIND_NOOP : BENCH_IMAP_KIND_FETCH_HEADERS));
}

struct user_case {
    const char *line;
    int rc;
    const char *user;
    const char *password;
};

static void
test_user_line(void)
{
    static const struct user_case cases[] = {
        {"user1@example.test:{PLAIN}x\n", 0, "user1@example.test", "x"},
        {"user1@example.test:{PLAIN}secret:1000:1000::/home/u::\r\n", 0, "user1@example.test",
         "secret"},
        {"a@b:pw", 0, "a@b", "pw"},
        {"a@b", 0, "a@b", ""},
        {"a@b:", 0, "a@b", ""},
        {"a@b:{PLAIN}", 0, "a@b", ""},
        {"a@b:{SHA512-CRYPT}$6$abc", 0, "a@b", ""},
        {"  a@b:pw", 0, "a@b", "pw"},
        {"", 1, NULL, NULL},
        {"\n", 1, NULL, NULL},
        {"   \r\n", 1, NULL, NULL},
        {"# comment:{PLAIN}x", 1, NULL, NULL},
        {":pw", -EINVAL, NULL, NULL},
        {"a\"b:pw", -EINVAL, NULL, NULL},
        {"a b:pw", -EINVAL, NULL, NULL},
        {"a@b:p\"w", -EINVAL, NULL, NULL},
        {"a@b:p\\w", -EINVAL, NULL, NULL},
        {"a@b:p\x01w", -EINVAL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char user[BENCH_IMAP_NAME_BYTES_MAX];
        char password[BENCH_IMAP_NAME_BYTES_MAX];
        int rc = bench_imap_options_user_line(cases[i].line, strlen(cases[i].line), user, password);
        CHECK(rc == cases[i].rc);
        if (rc == 0 && cases[i].rc == 0) {
            CHECK_STR(user, cases[i].user);
            CHECK_STR(password, cases[i].password);
        }
    }
    /* Lengths: 255 fits, 256 does not, for both fields. */
    char line[600];
    char user[BENCH_IMAP_NAME_BYTES_MAX];
    char password[BENCH_IMAP_NAME_BYTES_MAX];
    memset(line, 'u', 255);
    memcpy(line + 255, ":{PLAIN}", 8);
    memset(line + 263, 'p', 255);
    CHECK(bench_imap_options_user_line(line, 263 + 255, user, password) == 0);
    CHECK(strlen(user) == 255);
    CHECK(strlen(password) == 255);
    CHECK(bench_imap_options_user_line(line, 263 + 256 - 1, user, password) == 0);
    memset(line + 263, 'p', 256);
    CHECK(bench_imap_options_user_line(line, 263 + 256, user, password) == -EINVAL);
    memset(line, 'u', 256);
    line[256] = ':';
    CHECK(bench_imap_options_user_line(line, 257, user, password) == -EINVAL);
}

/* What the reader gave for one response. */
struct seen {
    char text[256];
    size_t text_bytes;
    uint64_t literal_bytes;
    uint32_t literal_count;
};

struct seen_list {
    struct seen items[RESPONSES_MAX];
    size_t count;
    bool has_error;
    enum bench_imap_report_error error;
};

static void
feed_chunk(struct bench_imap_report_reader *reader, const char *buf, size_t n,
           struct seen_list *out)
{
    size_t pos = 0;
    while (pos < n && !out->has_error) {
        enum bench_imap_report_result result;
        size_t taken = bench_imap_report_reader_feed(reader, buf + pos, n - pos, &result);
        CHECK(taken > 0);
        CHECK(taken <= n - pos);
        pos += taken;
        if (result == BENCH_IMAP_REPORT_ERROR) {
            out->has_error = true;
            out->error = reader->error;
            return;
        }
        if (result == BENCH_IMAP_REPORT_NEED_MORE) {
            CHECK(pos == n);
        }
        if (result == BENCH_IMAP_REPORT_DONE && out->count < RESPONSES_MAX) {
            struct seen *s = &out->items[out->count++];
            s->text_bytes =
                reader->text_bytes < sizeof(s->text) ? reader->text_bytes : sizeof(s->text);
            memcpy(s->text, reader->text, s->text_bytes);
            s->literal_bytes = reader->literal_bytes;
            s->literal_count = reader->literal_count;
        }
    }
}

static bool
seen_equal(const struct seen_list *a, const struct seen_list *b)
{
    if (a->count != b->count || a->has_error != b->has_error) {
        return false;
    }
    for (size_t i = 0; i < a->count; i++) {
        const struct seen *x = &a->items[i];
        const struct seen *y = &b->items[i];
        if (x->text_bytes != y->text_bytes || memcmp(x->text, y->text, x->text_bytes) != 0 ||
            x->literal_bytes != y->literal_bytes || x->literal_count != y->literal_count) {
            return false;
        }
    }
    return true;
}

struct reader_case {
    const char *input;
    size_t count;
    const char *texts[3];
    uint64_t literal_bytes[3];
    uint32_t literal_counts[3];
};

static void
test_reader_table(void)
{
    static const struct reader_case cases[] = {
        {"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready\r\n",
         1,
         {"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready"},
         {0},
         {0}},
        {"a1 OK done\r\n* 3 EXISTS\r\n", 2, {"a1 OK done", "* 3 EXISTS"}, {0, 0}, {0, 0}},
        {"* 5 FETCH (UID 5 BODY[HEADER] {10}\r\n0123456789)\r\na3 OK Fetch\r\n",
         2,
         {"* 5 FETCH (UID 5 BODY[HEADER] {10})", "a3 OK Fetch"},
         {10, 0},
         {1, 0}},
        /* Literal bytes that look like line ends and literals are skipped. */
        {"* 1 FETCH (BODY[] {12}\r\nab\r\n{3}\r\nxyz)\r\n",
         1,
         {"* 1 FETCH (BODY[] {12})"},
         {12},
         {1}},
        {"* 1 FETCH (BODY[] {0}\r\n)\r\n", 1, {"* 1 FETCH (BODY[] {0})"}, {0}, {1}},
        {"* 1 FETCH (ENVELOPE (\"d\" {2}\r\nab {3}\r\nc\nd NIL))\r\n",
         1,
         {"* 1 FETCH (ENVELOPE (\"d\" {2} {3} NIL))"},
         {5},
         {2}},
        {"* 1 FETCH (BINARY[] ~{3}\r\nabc)\r\n", 1, {"* 1 FETCH (BINARY[] ~{3})"}, {3}, {1}},
        /* Bare LF ends lines and announces literals too. */
        {"* OK hi\n+ go\n", 2, {"* OK hi", "+ go"}, {0, 0}, {0, 0}},
        {"* 2 FETCH (BODY[] {1}\nx)\n", 1, {"* 2 FETCH (BODY[] {1})"}, {1}, {1}},
        /* Not literals: no digits, other bytes, no line end right after. */
        {"* OK {}\r\n", 1, {"* OK {}"}, {0}, {0}},
        {"* OK {1a}\r\n", 1, {"* OK {1a}"}, {0}, {0}},
        {"* OK {12\r\n", 1, {"* OK {12"}, {0}, {0}},
        {"* OK {3} \r\n", 1, {"* OK {3} "}, {0}, {0}},
        {"* OK {3}\r\r\n", 1, {"* OK {3}\r"}, {0}, {0}},
        {"* OK {{2}\r\nab\r\n", 1, {"* OK {{2}"}, {2}, {1}},
        /* Garbage is still a response; the classifier judges it. */
        {"\r\n", 1, {""}, {0}, {0}},
        {"\x01\x02garbage\x7f\r\n", 1, {"\x01\x02garbage\x7f"}, {0}, {0}},
        {"+\r\n", 1, {"+"}, {0}, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct reader_case *rc = &cases[i];
        size_t n = strlen(rc->input);
        struct bench_imap_report_reader reader;
        struct seen_list whole;
        memset(&whole, 0, sizeof(whole));
        bench_imap_report_reader_init(&reader);
        feed_chunk(&reader, rc->input, n, &whole);
        CHECK(!whole.has_error);
        CHECK(whole.count == rc->count);
        for (size_t j = 0; j < whole.count && j < rc->count; j++) {
            CHECK_BYTES(whole.items[j].text, whole.items[j].text_bytes, rc->texts[j],
                        strlen(rc->texts[j]));
            CHECK(whole.items[j].literal_bytes == rc->literal_bytes[j]);
            CHECK(whole.items[j].literal_count == rc->literal_counts[j]);
        }
        /* One byte at a time. */
        struct seen_list bytes;
        memset(&bytes, 0, sizeof(bytes));
        bench_imap_report_reader_init(&reader);
        for (size_t k = 0; k < n; k++) {
            feed_chunk(&reader, rc->input + k, 1, &bytes);
        }
        CHECK(seen_equal(&whole, &bytes));
        /* Split at every boundary. */
        for (size_t k = 1; k < n; k++) {
            struct seen_list split;
            memset(&split, 0, sizeof(split));
            bench_imap_report_reader_init(&reader);
            feed_chunk(&reader, rc->input, k, &split);
            feed_chunk(&reader, rc->input + k, n - k, &split);
            CHECK(seen_equal(&whole, &split));
            if (!seen_equal(&whole, &split)) {
                (void)fprintf(stderr, "  case %zu split at %zu\n", i, k);
            }
        }
    }
}

/* A literal at the limit is streamed past in large chunks (never stored:
 * the reader's size stays that of its kept text); one byte more fails. */
static void
test_reader_limits(void)
{
    struct bench_imap_report_reader reader;
    struct seen_list out;
    char head[64];
    const size_t chunk_bytes = 1024 * 1024;
    char *chunk = calloc(1, chunk_bytes);
    CHECK(chunk != NULL);
    if (chunk == NULL) {
        return;
    }
    CHECK(sizeof(reader) < 2 * BENCH_IMAP_REPORT_KEEP_BYTES);

    for (int extra = -1; extra <= 1; extra++) {
        uint64_t literal = (uint64_t)BENCH_IMAP_REPORT_LITERAL_BYTES_MAX + (uint64_t)(int64_t)extra;
        int n = snprintf(head, sizeof(head), "* 1 FETCH (BODY[] {%llu}\r\n",
                         (unsigned long long)literal);
        memset(&out, 0, sizeof(out));
        bench_imap_report_reader_init(&reader);
        feed_chunk(&reader, head, (size_t)n, &out);
        if (extra > 0) {
            CHECK(out.has_error);
            CHECK(out.error == BENCH_IMAP_REPORT_ERROR_LITERAL_TOO_BIG);
            continue;
        }
        CHECK(!out.has_error);
        uint64_t left = literal;
        while (left > 0) {
            size_t take = left < chunk_bytes ? (size_t)left : chunk_bytes;
            feed_chunk(&reader, chunk, take, &out);
            left -= take;
        }
        CHECK(out.count == 0);
        feed_chunk(&reader, ")\r\n", 3, &out);
        CHECK(out.count == 1);
        CHECK(out.items[0].literal_bytes == literal);
        head[n - 2] = ')';
        CHECK_BYTES(out.items[0].text, out.items[0].text_bytes, head, (size_t)n - 1);
    }
    /* Digits past any limit saturate rather than wrap. */
    memset(&out, 0, sizeof(out));
    bench_imap_report_reader_init(&reader);
    static const char wrap[] = "* 1 FETCH (BODY[] {18446744073709551617}\r\n";
    feed_chunk(&reader, wrap, sizeof(wrap) - 1, &out);
    CHECK(out.has_error);
    CHECK(out.error == BENCH_IMAP_REPORT_ERROR_LITERAL_TOO_BIG);

    /* Line bytes: LINE_MAX in all (LF included) passes, one more fails. */
    size_t big = BENCH_IMAP_REPORT_LINE_BYTES_MAX + 1;
    char *line = malloc(big);
    CHECK(line != NULL);
    if (line != NULL) {
        for (int extra = -1; extra <= 1; extra++) {
            size_t bytes = (size_t)((int64_t)BENCH_IMAP_REPORT_LINE_BYTES_MAX + extra);
            memset(line, 'x', bytes - 1);
            memcpy(line, "* SEARCH", 8);
            line[bytes - 1] = '\n';
            memset(&out, 0, sizeof(out));
            bench_imap_report_reader_init(&reader);
            feed_chunk(&reader, line, bytes, &out);
            if (extra > 0) {
                CHECK(out.has_error);
                CHECK(out.error == BENCH_IMAP_REPORT_ERROR_LINE_TOO_LONG);
            } else {
                CHECK(!out.has_error);
                CHECK(out.count == 1);
                CHECK(reader.is_truncated);
                CHECK(reader.text_bytes == BENCH_IMAP_REPORT_KEEP_BYTES);
                CHECK(reader.line_bytes == bytes);
            }
        }
        free(line);
    }

    /* Literals per response: LITERALS_MAX pass, one more fails. */
    for (int extra = -1; extra <= 1; extra++) {
        uint32_t literals = (uint32_t)((int64_t)BENCH_IMAP_REPORT_LITERALS_MAX + extra);
        memset(&out, 0, sizeof(out));
        bench_imap_report_reader_init(&reader);
        feed_chunk(&reader, "* 1 FETCH (", 11, &out);
        for (uint32_t i = 0; i < literals && !out.has_error; i++) {
            feed_chunk(&reader, " {1}\r\nz", 7, &out);
        }
        feed_chunk(&reader, ")\r\n", 3, &out);
        if (extra > 0) {
            CHECK(out.has_error);
            CHECK(out.error == BENCH_IMAP_REPORT_ERROR_TOO_MANY_LITERALS);
        } else {
            CHECK(!out.has_error);
            CHECK(out.count == 1);
            CHECK(out.items[0].literal_count == literals);
            CHECK(out.items[0].literal_bytes == literals);
        }
    }

    /* Kept text: KEEP bytes, then truncated; the next response starts clean. */
    memset(&out, 0, sizeof(out));
    bench_imap_report_reader_init(&reader);
    memset(chunk, 'y', BENCH_IMAP_REPORT_KEEP_BYTES + 10);
    feed_chunk(&reader, chunk, BENCH_IMAP_REPORT_KEEP_BYTES - 1, &out);
    feed_chunk(&reader, "\r\n", 2, &out);
    CHECK(out.count == 1);
    CHECK(!reader.is_truncated);
    CHECK(reader.text_bytes == BENCH_IMAP_REPORT_KEEP_BYTES - 1);
    feed_chunk(&reader, chunk, BENCH_IMAP_REPORT_KEEP_BYTES, &out);
    feed_chunk(&reader, "\r\n", 2, &out);
    CHECK(out.count == 2);
    CHECK(!reader.is_truncated);
    CHECK(reader.text_bytes == BENCH_IMAP_REPORT_KEEP_BYTES);
    feed_chunk(&reader, chunk, BENCH_IMAP_REPORT_KEEP_BYTES + 1, &out);
    feed_chunk(&reader, "\r\n", 2, &out);
    CHECK(out.count == 3);
    CHECK(reader.is_truncated);
    CHECK(reader.text_bytes == BENCH_IMAP_REPORT_KEEP_BYTES);
    feed_chunk(&reader, "a1 OK\r\n", 7, &out);
    CHECK(out.count == 4);
    CHECK(!reader.is_truncated);
    CHECK_BYTES(reader.text, reader.text_bytes, "a1 OK", 5);
    free(chunk);
}

struct parse_case {
    const char *text;
    enum bench_imap_report_kind kind;
    enum bench_imap_report_status status;
    const char *tag_or_word; /* tagged: the tag; untagged: the word */
    bool has_number;
    uint64_t number;
};

static void
test_response_parse(void)
{
    static const struct parse_case cases[] = {
        {"* OK hi", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_OK, "OK", false, 0},
        {"* OK [UIDNEXT 5] x", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_OK, "OK", false,
         0},
        {"* OK[ALERT] x", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_OK, "OK", false, 0},
        {"* 12 EXISTS", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE, "EXISTS", true,
         12},
        {"* 0 EXISTS", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE, "EXISTS", true,
         0},
        {"* 3 EXPUNGE", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE, "EXPUNGE", true,
         3},
        {"* 1 FETCH (UID 1)", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE, "FETCH",
         true, 1},
        {"* 18446744073709551615 EXISTS", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE,
         "EXISTS", true, UINT64_MAX},
        {"* BYE bye", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_BYE, "BYE", false, 0},
        {"* PREAUTH hi", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_PREAUTH, "PREAUTH",
         false, 0},
        {"* CAPABILITY IMAP4rev1", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE,
         "CAPABILITY", false, 0},
        {"* SEARCH", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NONE, "SEARCH", false, 0},
        {"* no warning", BENCH_IMAP_REPORT_UNTAGGED, BENCH_IMAP_REPORT_STATUS_NO, "no", false, 0},
        {"a1 OK done", BENCH_IMAP_REPORT_TAGGED, BENCH_IMAP_REPORT_STATUS_OK, "a1", false, 0},
        {"a1 ok done", BENCH_IMAP_REPORT_TAGGED, BENCH_IMAP_REPORT_STATUS_OK, "a1", false, 0},
        {"a22 NO [AUTHENTICATIONFAILED] x", BENCH_IMAP_REPORT_TAGGED, BENCH_IMAP_REPORT_STATUS_NO,
         "a22", false, 0},
        {"A.1 BAD x", BENCH_IMAP_REPORT_TAGGED, BENCH_IMAP_REPORT_STATUS_BAD, "A.1", false, 0},
        {"a1 OK", BENCH_IMAP_REPORT_TAGGED, BENCH_IMAP_REPORT_STATUS_OK, "a1", false, 0},
        {"+ idling", BENCH_IMAP_REPORT_CONTINUATION, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"+", BENCH_IMAP_REPORT_CONTINUATION, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"*", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* ", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"*  OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {" a1 OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a1", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a1 ", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a1 MAYBE x", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a1 BYE x", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a1 OKAY", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a+ OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"(a1 OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"a{1 OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"\x01 OK", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"+x", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* 3", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* 3 ", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* 3x EXISTS", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* 3 OK hi", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE, NULL, false, 0},
        {"* 18446744073709551616 EXISTS", BENCH_IMAP_REPORT_GARBAGE, BENCH_IMAP_REPORT_STATUS_NONE,
         NULL, false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *pc = &cases[i];
        struct bench_imap_report_response resp;
        bench_imap_report_response_parse(pc->text, strlen(pc->text), &resp);
        CHECK(resp.kind == pc->kind);
        if (resp.kind != pc->kind) {
            (void)fprintf(stderr, "  \"%s\": kind %d\n", pc->text, (int)resp.kind);
            continue;
        }
        CHECK(resp.status == pc->status);
        CHECK(resp.has_number == pc->has_number);
        CHECK(resp.number == pc->number);
        if (pc->kind == BENCH_IMAP_REPORT_TAGGED) {
            CHECK_BYTES(resp.tag, resp.tag_bytes, pc->tag_or_word, strlen(pc->tag_or_word));
        } else if (pc->kind == BENCH_IMAP_REPORT_UNTAGGED) {
            CHECK_BYTES(resp.word, resp.word_bytes, pc->tag_or_word, strlen(pc->tag_or_word));
        }
    }
}

static void
test_has_atom(void)
{
    static const struct {
        const char *text;
        bool is_found;
    } cases[] = {
        {"* CAPABILITY IMAP4rev1 LITERAL+ IDLE", true},
        {"* OK [CAPABILITY IMAP4rev1 LITERAL+] ready", true},
        {"a1 OK [CAPABILITY IMAP4rev1 literal+] ok", true},
        {"LITERAL+", true},
        {"[LITERAL+", true},
        {"* CAPABILITY LITERAL+X", false},
        {"* CAPABILITY XLITERAL+", false},
        {"* CAPABILITY LITERAL- IDLE", false},
        {"* CAPABILITY LITERAL", false},
        {"LITERAL", false},
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(bench_imap_report_has_atom(cases[i].text, strlen(cases[i].text), "LITERAL+") ==
              cases[i].is_found);
    }
}

static void
test_stats_and_json(void)
{
    struct bench_imap_stats *a = malloc(sizeof(*a));
    struct bench_imap_stats *b = malloc(sizeof(*b));
    CHECK(a != NULL && b != NULL);
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return;
    }
    bench_imap_stats_init(a);
    bench_imap_stats_init(b);
    bench_imap_stats_add(&a->kinds[BENCH_IMAP_KIND_NOOP].done, 2);
    histogram_record(&a->kinds[BENCH_IMAP_KIND_NOOP].latency, 100);
    histogram_record(&a->kinds[BENCH_IMAP_KIND_NOOP].latency, 200);
    bench_imap_stats_add(&a->kinds[BENCH_IMAP_KIND_SEARCH].no, 1);
    bench_imap_stats_add(&a->kinds[BENCH_IMAP_KIND_STORE].bad, 1);
    bench_imap_stats_add(&a->timeouts, 1);
    bench_imap_stats_add(&b->kinds[BENCH_IMAP_KIND_FETCH_BODY].done, 1);
    bench_imap_stats_add(&b->bytes_received, 1000);
    bench_imap_stats_set(&b->last_done_ns, 77);
    bench_imap_stats_merge(b, a);
    CHECK(bench_imap_stats_done(b) == 3);
    CHECK(bench_imap_stats_errors(b) == 3);
    CHECK(b->kinds[BENCH_IMAP_KIND_NOOP].latency.count == 2);
    CHECK(b->last_done_ns == 77);
    CHECK(bench_imap_stats_errors(a) == 3);

    char path[] = "/tmp/test_bench_imap_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        (void)close(fd);
        struct bench_imap_report_info info = {
            .server = "127.0.0.1:143",
            .command = "toaster-bench imap \"x\"",
            .connections = 1,
            .threads = 1,
            .mix_text = "noop=1",
            .mailbox = "INBOX",
            .seconds = 1.5,
        };
        CHECK(bench_imap_report_json(path, &info, b) == 0);
        char text[8192];
        FILE *in = fopen(path, "r");
        CHECK(in != NULL);
        if (in != NULL) {
            size_t n = fread(text, 1, sizeof(text) - 1, in);
            text[n] = '\0';
            (void)fclose(in);
            CHECK(strstr(text, "\"commands\": 3,") != NULL);
            CHECK(strstr(text, "\"cmds_per_s\": 2.000,") != NULL);
            CHECK(strstr(text, "\"noop\": {\"ok\": 2") != NULL);
            CHECK(strstr(text, "\"search\": {\"ok\": 0, \"no\": 1") != NULL);
            CHECK(strstr(text, "\"total\": 3") != NULL);
            CHECK(strstr(text, "toaster-bench imap \\\"x\\\"") != NULL);
        }
        (void)unlink(path);
        CHECK(bench_imap_report_json("/nonexistent-dir/x.json", &info, b) == -ENOENT);
    }
    free(a);
    free(b);
}

int
main(void)
{
    test_defaults();
    test_values();
    test_bounds();
    test_invalid();
    test_mix();
    test_user_line();
    test_reader_table();
    test_reader_limits();
    test_response_parse();
    test_has_atom();
    test_stats_and_json();
    UNIT_DONE();
}
