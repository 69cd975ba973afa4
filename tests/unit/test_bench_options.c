/*
 * tests/unit/test_bench_options.c - the command line of toaster-bench smtp
 * (bench/bench_smtp_options.c).
 *
 * The parser returns instead of exiting, so each case calls it directly with
 * an argv of its own and checks the result, the parsed values and, for a
 * usage error, that the one line on stderr names the option (stderr and
 * stdout are captured in a temporary file). Bounds are tried at max - 1,
 * max and max + 1; sizes, size mixes and recipient patterns are
 * table-driven, valid, invalid and borderline, and so are the --tls-sni
 * names of --starttls.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_smtp_options.h"
#include "bench/bench_tls.h"
#include "test_bench_capture.h"
#include "unit.h"

/* bench_smtp_options_parse() behind the capture's void * signature. */
static int
parse_smtp(int argc, char **argv, void *options)
{
    return bench_smtp_options_parse(argc, argv, options);
}

/* bench_smtp_options_parse() on "smtp" followed by the NULL-terminated
 * arguments; output captured. */
static int
parse(struct bench_smtp_options *options, ...)
{
    va_list ap;
    va_start(ap, options);
    int rc = test_bench_parse(parse_smtp, options, "smtp", ap);
    va_end(ap);
    return rc;
}

static bool
is_usage_error(int rc, const char *option)
{
    return test_bench_is_usage_error(rc, "toaster-bench smtp: ", option);
}

static bool
is_ok(int rc)
{
    return test_bench_is_ok(rc);
}

static void
test_defaults(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, NULL)));
    CHECK(o.connections == 10);
    CHECK(o.threads == 1);
    CHECK(o.messages_per_session == 100);
    CHECK(o.count == 10000);
    CHECK(o.duration_s == 0);
    CHECK(o.class_count == 1);
    CHECK(o.classes[0].size_bytes == 4096);
    CHECK(o.classes[0].weight > 0);
    CHECK_STR(o.size_text, "4k");
    CHECK_STR(o.rcpt_pattern, "user%d@example.test");
    CHECK(o.users == 100);
    CHECK(o.rcpts_per_message == 1);
    CHECK(!o.is_rcpt_random);
    CHECK_STR(o.from, "sender@example.test");
    CHECK(o.is_pipelining);
    CHECK(!o.is_bdat);
    CHECK(o.rate == 0);
    CHECK(o.timeout_s == 60);
    CHECK(o.json_path == NULL);
    CHECK(!o.is_quiet);
    CHECK(o.source_count == 0);
    CHECK(!o.is_starttls);
    CHECK(!o.is_tls_resume);
    CHECK(o.tls_sni == NULL);
    CHECK_STR(o.server_text, "127.0.0.1:2525");
    const struct sockaddr_in *in4 = (const struct sockaddr_in *)&o.server;
    CHECK(o.server.ss_family == AF_INET);
    CHECK(o.server_bytes == sizeof(struct sockaddr_in));
    CHECK(ntohs(in4->sin_port) == 2525);
    CHECK(ntohl(in4->sin_addr.s_addr) == 0x7f000001);
}

struct size_case {
    const char *text;
    int         rc;
    uint64_t    bytes;
};

static const struct size_case size_cases[] = {
    {"2000", 0, 2000},
    {"0", 0, 0},
    {"4k", 0, 4096},
    {"4K", 0, 4096},
    {"4kb", 0, 4096},
    {"4KB", 0, 4096},
    {"50k", 0, 51200},
    {"1m", 0, 1048576},
    {"1M", 0, 1048576},
    {"256m", 0, 268435456},
    {"1g", 0, 1073741824},
    {"16777215g", 0, 16777215ULL << 30},
    {"18446744073709551615", 0, UINT64_MAX},
    {"", -EINVAL, 0},
    {"k", -EINVAL, 0},
    {"-1", -EINVAL, 0},
    {"+4k", -EINVAL, 0},
    {" 4k", -EINVAL, 0},
    {"4k ", -EINVAL, 0},
    {"4 k", -EINVAL, 0},
    {"1.5k", -EINVAL, 0},
    {"4x", -EINVAL, 0},
    {"4kk", -EINVAL, 0},
    {"4kbb", -EINVAL, 0},
    {"4t", -EINVAL, 0},
    {"0x10", -EINVAL, 0},
    {"18446744073709551616", -EINVAL, 0}, /* UINT64_MAX + 1 */
    {"17179869184g", -EINVAL, 0},         /* 2^34 GiB overflows */
    {"18014398509481984k", -EINVAL, 0},   /* 2^54 KiB overflows */
};

static void
test_size_text(void)
{
    for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
        const struct size_case *tc = &size_cases[i];
        uint64_t bytes = 12345;
        int rc = bench_smtp_options_size(tc->text, &bytes);
        CHECK(rc == tc->rc);
        if (rc != tc->rc) {
            (void)fprintf(stderr, "  size \"%s\": rc %d\n", tc->text, rc);
        }
        CHECK(bytes == (tc->rc == 0 ? tc->bytes : 12345)); /* untouched on error */
    }
}

static void
test_size_option(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, "--size", "2000", NULL)));
    CHECK(o.class_count == 1);
    CHECK(o.classes[0].size_bytes == 2000);
    CHECK_STR(o.size_text, "2000");
    CHECK(is_ok(parse(&o, "--size", "4k", NULL)));
    CHECK(o.classes[0].size_bytes == 4096);
    CHECK(is_ok(parse(&o, "--size=1m", NULL)));
    CHECK(o.classes[0].size_bytes == 1048576);
    CHECK_STR(o.size_text, "1m");
    /* 256m is the largest, 0 is no size. */
    CHECK(is_ok(parse(&o, "--size", "256m", NULL)));
    CHECK(o.classes[0].size_bytes == 268435456);
    CHECK(is_ok(parse(&o, "--size", "268435456", NULL)));
    CHECK(is_usage_error(parse(&o, "--size", "268435457", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "257m", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "1g", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "0", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "4x", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "", NULL), "--size"));
    /* Once, and not together with a mix. */
    CHECK(is_usage_error(parse(&o, "--size", "4k", "--size", "8k", NULL), "--size"));
    CHECK(is_usage_error(parse(&o, "--size", "4k", "--size-mix", "8k:1", NULL), "--size-mix"));
    CHECK(is_usage_error(parse(&o, "--size-mix", "8k:1", "--size", "4k", NULL), "--size"));
    /* Without a value. */
    CHECK(is_usage_error(parse(&o, "--size", NULL), "--size"));
}

struct mix_case {
    const char *text;
    bool        is_ok;
    uint32_t    class_count;
    size_t      first_bytes;
    uint32_t    first_weight;
    size_t      last_bytes;
    uint32_t    last_weight;
};

static const struct mix_case mix_cases[] = {
    {"4k:50,20k:50", true, 2, 4096, 50, 20480, 50},
    {"4k:70,50k:25,1m:5", true, 3, 4096, 70, 1048576, 5},
    {"2000:1", true, 1, 2000, 1, 2000, 1},
    {"4k:0,8k:1", true, 2, 4096, 0, 8192, 1},     /* a zero weight is allowed... */
    {"4k:1000000", true, 1, 4096, 1000000, 4096, 1000000},
    {"256m:1", true, 1, 268435456, 1, 268435456, 1},
    {"4k:0", false, 0, 0, 0, 0, 0},               /* ...but not all of them */
    {"4k:0,8k:0", false, 0, 0, 0, 0, 0},
    {"4k:1000001", false, 0, 0, 0, 0, 0},
    {"4k", false, 0, 0, 0, 0, 0},
    {"4k:", false, 0, 0, 0, 0, 0},
    {":50", false, 0, 0, 0, 0, 0},
    {"4k:50,", false, 0, 0, 0, 0, 0},
    {",4k:50", false, 0, 0, 0, 0, 0},
    {"4k:50,,8k:50", false, 0, 0, 0, 0, 0},
    {"4k:50:3", false, 0, 0, 0, 0, 0},
    {"4k:-1", false, 0, 0, 0, 0, 0},
    {"4k:1.5", false, 0, 0, 0, 0, 0},
    {"4k: 1", false, 0, 0, 0, 0, 0},
    {"4x:1", false, 0, 0, 0, 0, 0},
    {"0:1", false, 0, 0, 0, 0, 0},
    {"257m:1", false, 0, 0, 0, 0, 0},
    {"4k;50", false, 0, 0, 0, 0, 0},
    {"", false, 0, 0, 0, 0, 0},
};

static void
test_size_mix(void)
{
    struct bench_smtp_options o;

    for (size_t i = 0; i < sizeof(mix_cases) / sizeof(mix_cases[0]); i++) {
        const struct mix_case *tc = &mix_cases[i];
        int rc = parse(&o, "--size-mix", tc->text, NULL);
        if (!tc->is_ok) {
            CHECK(is_usage_error(rc, "--size-mix"));
            continue;
        }
        CHECK(is_ok(rc));
        CHECK(o.class_count == tc->class_count);
        if (o.class_count != tc->class_count || o.class_count == 0) {
            (void)fprintf(stderr, "  mix \"%s\": %u classes\n", tc->text, o.class_count);
            continue;
        }
        CHECK(o.classes[0].size_bytes == tc->first_bytes);
        CHECK(o.classes[0].weight == tc->first_weight);
        CHECK(o.classes[o.class_count - 1].size_bytes == tc->last_bytes);
        CHECK(o.classes[o.class_count - 1].weight == tc->last_weight);
        CHECK_STR(o.size_text, tc->text);
    }

    /* BENCH_MESSAGE_CLASSES_MAX classes, then one more. */
    char mix[512];
    size_t n = 0;
    for (int i = 0; i < BENCH_MESSAGE_CLASSES_MAX; i++) {
        n += (size_t)snprintf(mix + n, sizeof(mix) - n, "%s%dk:1", i > 0 ? "," : "", i + 1);
    }
    CHECK(is_ok(parse(&o, "--size-mix", mix, NULL)));
    CHECK(o.class_count == BENCH_MESSAGE_CLASSES_MAX);
    CHECK(o.classes[BENCH_MESSAGE_CLASSES_MAX - 1].size_bytes ==
          (size_t)BENCH_MESSAGE_CLASSES_MAX * 1024);
    (void)snprintf(mix + n, sizeof(mix) - n, ",99k:1");
    CHECK(is_usage_error(parse(&o, "--size-mix", mix, NULL), "--size-mix"));

    /* One item of 64 characters or more is refused, not truncated. */
    char long_item[80];
    memset(long_item, '0', 60);
    memcpy(long_item + 60, "1:1", 4); /* 63 characters: fine */
    CHECK(is_ok(parse(&o, "--size-mix", long_item, NULL)));
    CHECK(o.classes[0].size_bytes == 1);
    memset(long_item, '0', 61);
    memcpy(long_item + 61, "1:1", 4); /* 64 */
    CHECK(is_usage_error(parse(&o, "--size-mix", long_item, NULL), "--size-mix"));
}

struct rcpt_case {
    const char *pattern;
    bool        is_ok;
};

static const struct rcpt_case rcpt_cases[] = {
    {"user%d@example.test", true},
    {"alice@example.com", true}, /* no %d: every message to one address */
    {"%d@example.test", true},
    {"u%d-x@example.test", true},
    {"user@%d.example.test", true},
    {"100%%-user%d@example.test", true},
    {"a%%b@example.test", true},
    {"user%d%d@example.test", false}, /* two numbers */
    {"user%s@example.test", false},
    {"user%@example.test", false},
    {"user@example.test%", false},
    {"user%x@example.test", false},
    {"user name%d@example.test", false},
    {"user\t%d@example.test", false},
    {"<user%d@example.test>", false},
    {"user%d@example.test>", false},
    {"\"user\"%d@example.test", false},
    {"user\\%d@example.test", false},
    {"user%dexample.test", false},     /* no @ */
    {"a@b@example.test", false},       /* two */
    {"@example.test", false},
    {"user%d@", false},
    {"", false},
    {"us\xc3\xa9r%d@example.test", false}, /* 8-bit */
    {"user\x7f%d@example.test", false},
};

static void
test_rcpt(void)
{
    struct bench_smtp_options o;

    for (size_t i = 0; i < sizeof(rcpt_cases) / sizeof(rcpt_cases[0]); i++) {
        const struct rcpt_case *tc = &rcpt_cases[i];
        int rc = parse(&o, "--rcpt", tc->pattern, NULL);
        if (tc->is_ok) {
            CHECK(is_ok(rc));
            CHECK(o.rcpt_pattern != NULL && strcmp(o.rcpt_pattern, tc->pattern) == 0);
        } else {
            CHECK(is_usage_error(rc, "--rcpt"));
        }
    }

    /* Length: under 128 characters. */
    char pattern[200];
    memset(pattern, 'a', sizeof(pattern));
    memcpy(pattern + 127 - 13, "%d@example.tt", 14); /* 127 characters */
    CHECK(strlen(pattern) == 127);
    CHECK(is_ok(parse(&o, "--rcpt", pattern, NULL)));
    memset(pattern, 'a', sizeof(pattern));
    memcpy(pattern + 128 - 13, "%d@example.tt", 14); /* 128 */
    CHECK(is_usage_error(parse(&o, "--rcpt", pattern, NULL), "--rcpt"));

    /* --from is an address, not a pattern: a '%' is literal there. */
    CHECK(is_ok(parse(&o, "--from", "a%b@example.test", NULL)));
    CHECK_STR(o.from, "a%b@example.test");
    CHECK(is_usage_error(parse(&o, "--from", "a b@example.test", NULL), "--from"));
    CHECK(is_usage_error(parse(&o, "--from", "nobody", NULL), "--from"));

    /* Users, recipients per message, order. */
    CHECK(is_ok(parse(&o, "--users", "1", "--rcpts-per-message", "1000", NULL)));
    CHECK(o.users == 1);
    CHECK(o.rcpts_per_message == 1000);
    CHECK(is_ok(parse(&o, "--users", "100000000", "--rcpts-per-message", "999", NULL)));
    CHECK(o.users == 100000000);
    CHECK(is_usage_error(parse(&o, "--users", "0", NULL), "--users"));
    CHECK(is_usage_error(parse(&o, "--users", "100000001", NULL), "--users"));
    CHECK(is_usage_error(parse(&o, "--rcpts-per-message", "0", NULL), "--rcpts-per-message"));
    CHECK(is_usage_error(parse(&o, "--rcpts-per-message", "1001", NULL), "--rcpts-per-message"));
    CHECK(is_ok(parse(&o, "--rcpt-order", "random", NULL)));
    CHECK(o.is_rcpt_random);
    CHECK(is_ok(parse(&o, "--rcpt-order", "random", "--rcpt-order", "rr", NULL)));
    CHECK(!o.is_rcpt_random);
    CHECK(is_ok(parse(&o, "--rcpt-order", "round-robin", NULL)));
    CHECK(is_usage_error(parse(&o, "--rcpt-order", "shuffle", NULL), "--rcpt-order"));
}

static void
test_connections(void)
{
    struct bench_smtp_options o;

    CHECK(is_usage_error(parse(&o, "--connections", "0", NULL), "--connections"));
    CHECK(is_ok(parse(&o, "--connections", "1", NULL)));
    CHECK(o.connections == 1);
    CHECK(is_ok(parse(&o, "--connections", "2", NULL)));
    CHECK(o.connections == 2);
    CHECK(is_ok(parse(&o, "--connections", "49999", NULL)));
    CHECK(is_ok(parse(&o, "--connections", "50000", NULL)));
    CHECK(o.connections == 50000);
    CHECK(is_usage_error(parse(&o, "--connections", "50001", NULL), "--connections"));
    CHECK(is_usage_error(parse(&o, "--connections", "-1", NULL), "--connections"));
    CHECK(is_usage_error(parse(&o, "--connections", "1e3", NULL), "--connections"));
    CHECK(is_usage_error(parse(&o, "--connections", "10x", NULL), "--connections"));
    CHECK(is_usage_error(parse(&o, "--connections", "", NULL), "--connections"));
    CHECK(is_usage_error(parse(&o, "--connections", "99999999999999999999999", NULL),
                         "--connections"));

    /* Threads: 1..64 and no more than connections. */
    CHECK(is_ok(parse(&o, "--connections", "64", "--threads", "64", NULL)));
    CHECK(o.threads == 64);
    CHECK(is_usage_error(parse(&o, "--connections", "100", "--threads", "65", NULL),
                         "--threads"));
    CHECK(is_usage_error(parse(&o, "--threads", "0", NULL), "--threads"));
    CHECK(is_usage_error(parse(&o, "--connections", "3", "--threads", "4", NULL), "--threads"));
    CHECK(is_ok(parse(&o, "--connections", "4", "--threads", "4", NULL)));

    /* Messages per session: 0 is "keep the connection". */
    CHECK(is_ok(parse(&o, "--messages-per-session", "0", NULL)));
    CHECK(o.messages_per_session == 0);
    CHECK(is_ok(parse(&o, "--messages-per-session", "4294967295", NULL)));
    CHECK(o.messages_per_session == UINT32_MAX);
    CHECK(is_usage_error(parse(&o, "--messages-per-session", "4294967296", NULL),
                         "--messages-per-session"));
}

static void
test_rate_duration_count(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, "--rate", "50", NULL)));
    CHECK(o.rate == 50.0);
    CHECK(is_ok(parse(&o, "--rate", "0.5", NULL)));
    CHECK(o.rate == 0.5);
    CHECK(is_ok(parse(&o, "--rate", "1e7", NULL)));
    CHECK(is_ok(parse(&o, "--rate", "0.001", NULL)));
    CHECK(is_usage_error(parse(&o, "--rate", "0", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "0.0009", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "-5", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "1.1e7", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "fast", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "50/s", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "inf", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "nan", NULL), "--rate"));
    CHECK(is_usage_error(parse(&o, "--rate", "", NULL), "--rate"));

    /* --duration replaces the default count; --count and --duration
     * exclude each other, in either order. */
    CHECK(is_ok(parse(&o, "--duration", "2", NULL)));
    CHECK(o.duration_s == 2.0);
    CHECK(o.count == 0);
    CHECK(is_ok(parse(&o, "--duration", "0.25", "--rate", "50", NULL)));
    CHECK(o.duration_s == 0.25);
    CHECK(is_ok(parse(&o, "--count", "7", NULL)));
    CHECK(o.count == 7);
    CHECK(o.duration_s == 0);
    CHECK(is_usage_error(parse(&o, "--count", "5", "--duration", "2", NULL), "--duration"));
    CHECK(is_usage_error(parse(&o, "--duration", "2", "--count", "5", NULL), "--duration"));
    CHECK(is_usage_error(parse(&o, "--duration", "0", NULL), "--duration"));
    CHECK(is_usage_error(parse(&o, "--duration", "-1", NULL), "--duration"));
    CHECK(is_usage_error(parse(&o, "--duration", "2s", NULL), "--duration"));
    CHECK(is_usage_error(parse(&o, "--duration", "2592001", NULL), "--duration"));
    CHECK(is_ok(parse(&o, "--duration", "2592000", NULL))); /* 30 days */
    CHECK(is_usage_error(parse(&o, "--count", "0", NULL), "--count"));
    CHECK(is_usage_error(parse(&o, "--count", "many", NULL), "--count"));
    CHECK(is_ok(parse(&o, "--count", "1", NULL)));
    CHECK(o.count == 1);

    /* --timeout 1..3600. */
    CHECK(is_ok(parse(&o, "--timeout", "1", NULL)));
    CHECK(o.timeout_s == 1);
    CHECK(is_ok(parse(&o, "--timeout", "3600", NULL)));
    CHECK(is_usage_error(parse(&o, "--timeout", "0", NULL), "--timeout"));
    CHECK(is_usage_error(parse(&o, "--timeout", "3601", NULL), "--timeout"));
}

static void
test_protocol(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, "--pipelining", "off", NULL)));
    CHECK(!o.is_pipelining);
    CHECK(is_ok(parse(&o, "--pipelining", "off", "--pipelining", "on", NULL)));
    CHECK(o.is_pipelining);
    CHECK(is_usage_error(parse(&o, "--pipelining", "yes", NULL), "--pipelining"));
    CHECK(is_usage_error(parse(&o, "--pipelining", "ON", NULL), "--pipelining"));
    CHECK(is_usage_error(parse(&o, "--pipelining", "", NULL), "--pipelining"));
    CHECK(is_usage_error(parse(&o, "--pipelining", NULL), "--pipelining"));

    CHECK(is_ok(parse(&o, "--bdat", NULL)));
    CHECK(o.is_bdat);
    CHECK(is_usage_error(parse(&o, "--bdat=yes", NULL), "--bdat"));

    CHECK(is_ok(parse(&o, "--helo", "client.example", NULL)));
    CHECK_STR(o.helo, "client.example");
    CHECK(is_usage_error(parse(&o, "--helo", "", NULL), "--helo"));
    CHECK(is_usage_error(parse(&o, "--helo", "two words", NULL), "--helo"));
    CHECK(is_usage_error(parse(&o, "--helo", "tab\there", NULL), "--helo"));
    /* A line end would smuggle a command; the message echoes it, so it is
     * not one line, but the option is refused all the same. */
    CHECK(parse(&o, "--helo", "crlf\r\nQUIT", NULL) == -EINVAL);
    CHECK(strstr(test_bench_captured_err, "--helo") != NULL);
    char helo[200];
    memset(helo, 'h', sizeof(helo));
    helo[BENCH_SMTP_HELO_BYTES_MAX - 1] = '\0';
    CHECK(is_ok(parse(&o, "--helo", helo, NULL)));
    helo[BENCH_SMTP_HELO_BYTES_MAX - 1] = 'h';
    helo[BENCH_SMTP_HELO_BYTES_MAX] = '\0';
    CHECK(is_usage_error(parse(&o, "--helo", helo, NULL), "--helo"));

    CHECK(is_ok(parse(&o, "--json", "/tmp/x.json", "--quiet", "--seed", "42", NULL)));
    CHECK_STR(o.json_path, "/tmp/x.json");
    CHECK(o.is_quiet);
    CHECK(o.seed == 42);
    CHECK(is_usage_error(parse(&o, "--seed", "x", NULL), "--seed"));
}

struct sni_case {
    const char *name;
    bool        is_ok;
};

static const struct sni_case sni_cases[] = {
    {"mail.example.test", true},
    {"localhost", true},
    {"MX-1.Example.COM", true},
    {"a", true},
    {"1.2.3.4", true}, /* digits are letters of a label here */
    {"", false},
    {".", false},
    {"mail..example", false},
    {".example", false},
    {"example.", false},
    {"mail example", false},
    {"mail_example", false},
    {"mail.example:25", false},
    {"[::1]", false},
};

static void
test_starttls(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, "--starttls", NULL)));
    CHECK(o.is_starttls);
    CHECK(!o.is_tls_resume);
    CHECK(o.tls_sni == NULL);
    CHECK(is_usage_error(parse(&o, "--starttls=yes", NULL), "--starttls"));
    CHECK(parse(&o, "--help", NULL) == BENCH_SMTP_OPTIONS_HELP);
    CHECK(strstr(test_bench_captured_out, "--starttls") != NULL);
    CHECK(strstr(test_bench_captured_out, "--tls-resume") != NULL);
    CHECK(strstr(test_bench_captured_out, "--tls-sni") != NULL);

    /* --tls-resume and --tls-sni mean something only with --starttls,
     * whichever comes first. */
    CHECK(is_ok(parse(&o, "--tls-resume", "--starttls", NULL)));
    CHECK(o.is_starttls && o.is_tls_resume);
    CHECK(is_usage_error(parse(&o, "--tls-resume", NULL), "--tls-resume"));
    CHECK(is_ok(parse(&o, "--starttls", "--tls-sni", "mail.example.test", "--tls-resume", NULL)));
    CHECK_STR(o.tls_sni, "mail.example.test");
    CHECK(o.is_tls_resume);
    CHECK(is_usage_error(parse(&o, "--tls-sni", "mail.example.test", NULL), "--tls-sni"));
    CHECK(is_usage_error(parse(&o, "--starttls", "--tls-sni", NULL), "--tls-sni"));

    for (size_t i = 0; i < sizeof(sni_cases) / sizeof(sni_cases[0]); i++) {
        const struct sni_case *tc = &sni_cases[i];
        int rc = parse(&o, "--starttls", "--tls-sni", tc->name, NULL);
        if (tc->is_ok) {
            CHECK(is_ok(rc));
            CHECK_STR(o.tls_sni, tc->name);
        } else {
            CHECK(is_usage_error(rc, "--tls-sni"));
        }
    }

    /* A label of 63 bytes, then 64; a name of 253 bytes, then 254. */
    char name[300];
    memset(name, 'l', 63);
    name[63] = '\0';
    CHECK(is_ok(parse(&o, "--starttls", "--tls-sni", name, NULL)));
    name[63] = 'l';
    name[64] = '\0';
    CHECK(is_usage_error(parse(&o, "--starttls", "--tls-sni", name, NULL), "--tls-sni"));
    for (size_t i = 0; i < 253; i++) {
        name[i] = i % 50 == 49 ? '.' : 'n'; /* labels of 49 */
    }
    name[253] = '\0';
    CHECK(is_ok(parse(&o, "--starttls", "--tls-sni", name, NULL)));
    CHECK(strlen(o.tls_sni) == BENCH_TLS_SNI_BYTES_MAX);
    name[253] = 'n';
    name[254] = '\0';
    CHECK(is_usage_error(parse(&o, "--starttls", "--tls-sni", name, NULL), "--tls-sni"));
}

static void
test_server_and_source(void)
{
    struct bench_smtp_options o;

    CHECK(is_ok(parse(&o, "--server", "127.0.0.1:25", NULL)));
    CHECK_STR(o.server_text, "127.0.0.1:25");
    CHECK(ntohs(((const struct sockaddr_in *)&o.server)->sin_port) == 25);
    CHECK(is_ok(parse(&o, "--server", "[::1]:2525", NULL)));
    CHECK(o.server.ss_family == AF_INET6);
    CHECK(o.server_bytes == sizeof(struct sockaddr_in6));
    CHECK_STR(o.server_text, "[::1]:2525");
    CHECK(ntohs(((const struct sockaddr_in6 *)&o.server)->sin6_port) == 2525);
    CHECK(is_ok(parse(&o, "--server", "10.0.0.1:65535", NULL)));
    CHECK(is_usage_error(parse(&o, "--server", "10.0.0.1:65536", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "10.0.0.1:0", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "10.0.0.1", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "10.0.0.1:", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "::1:25", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "[::1]25", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "[]:25", NULL), "--server"));
    CHECK(is_usage_error(parse(&o, "--server", "localhost:25", NULL), "--server")); /* no DNS */
    CHECK(is_usage_error(parse(&o, "--server", "300.0.0.1:25", NULL), "--server"));

    CHECK(is_ok(parse(&o, "--source", "127.0.0.2,127.0.0.3", NULL)));
    CHECK(o.source_count == 2);
    CHECK(o.source_bytes == sizeof(struct sockaddr_in));
    CHECK(ntohl(((const struct sockaddr_in *)&o.sources[0])->sin_addr.s_addr) == 0x7f000002);
    CHECK(ntohl(((const struct sockaddr_in *)&o.sources[1])->sin_addr.s_addr) == 0x7f000003);
    CHECK(ntohs(((const struct sockaddr_in *)&o.sources[1])->sin_port) == 0);
    /* The family is the server's, whichever option comes first. */
    CHECK(is_ok(parse(&o, "--source", "[::1]", "--server", "[::1]:25", NULL)));
    CHECK(o.source_count == 1);
    CHECK(o.sources[0].ss_family == AF_INET6);
    CHECK(is_usage_error(parse(&o, "--source", "::1", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "--source", "127.0.0.2", "--server", "[::1]:25", NULL),
                         "--source"));
    CHECK(is_usage_error(parse(&o, "--source", "127.0.0.2,", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "--source", ",127.0.0.2", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "--source", "", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "--source", "127.0.0.2:25", NULL), "--source"));
    CHECK(is_usage_error(parse(&o, "--source", "somehost", NULL), "--source"));

    /* BENCH_SMTP_SOURCES_MAX addresses, then one more. */
    char list[BENCH_SMTP_SOURCES_MAX * 16 + 32];
    size_t n = 0;
    for (int i = 0; i < BENCH_SMTP_SOURCES_MAX; i++) {
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s127.0.1.%d", i > 0 ? "," : "", i);
    }
    CHECK(is_ok(parse(&o, "--source", list, NULL)));
    CHECK(o.source_count == BENCH_SMTP_SOURCES_MAX);
    (void)snprintf(list + n, sizeof(list) - n, ",127.0.2.1");
    CHECK(is_usage_error(parse(&o, "--source", list, NULL), "--source"));
}

static void
test_unknown_and_help(void)
{
    struct bench_smtp_options o;

    CHECK(is_usage_error(parse(&o, "--bogus", NULL), "--bogus"));
    CHECK(is_usage_error(parse(&o, "--count", "5", "--conections", "3", NULL), "--conections"));
    CHECK(is_usage_error(parse(&o, "-x", NULL), "-x"));
    CHECK(is_usage_error(parse(&o, "stray", NULL), "stray"));
    CHECK(is_usage_error(parse(&o, "--count", "5", "stray", NULL), "stray"));
    CHECK(is_usage_error(parse(&o, "--count", NULL), "--count"));
    /* "--s" could be --server, --source, --size, --size-mix or --seed. */
    CHECK(is_usage_error(parse(&o, "--s", "1", NULL), "--s"));

    CHECK(parse(&o, "--help", NULL) == BENCH_SMTP_OPTIONS_HELP);
    CHECK(strncmp(test_bench_captured_out, "usage: toaster-bench smtp", 25) == 0);
    CHECK(strstr(test_bench_captured_out, "--size-mix") != NULL);
    CHECK(test_bench_captured_err[0] == '\0');
    CHECK(parse(&o, "-h", NULL) == BENCH_SMTP_OPTIONS_HELP);
    CHECK(strncmp(test_bench_captured_out, "usage: toaster-bench smtp", 25) == 0);
    /* Help wins over what follows it, broken or not. */
    CHECK(parse(&o, "--help", "--connections", "0", NULL) == BENCH_SMTP_OPTIONS_HELP);

    /* The parser can run again after an error (optind is reset). */
    CHECK(is_ok(parse(&o, "--count", "3", NULL)));
    CHECK(o.count == 3);
}

int
main(void)
{
    test_defaults();
    test_size_text();
    test_size_option();
    test_size_mix();
    test_rcpt();
    test_connections();
    test_rate_duration_count();
    test_protocol();
    test_starttls();
    test_server_and_source();
    test_unknown_and_help();
    UNIT_DONE();
}
