/*
 * bench/bench_imap_options.c - command lines of toaster-bench imap and
 * imap-idle, the command mix and the users file line.
 *
 * Owns nothing: the parsed options point into argv. Runs once on the main
 * thread before anything connects. Every bound the event loop relies on
 * (connections, threads, users, name lengths, the mix) is checked here and
 * named in the message when broken.
 */
#include "bench/bench_imap_options.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_args.h"
#include "core/assertions.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_CONNECTIONS 10
#define DEFAULT_COUNT 10000
#define DEFAULT_PATTERN "user%d@example.test"
#define DEFAULT_PASSWORD "x"
#define DEFAULT_USERS 100
#define DEFAULT_MAILBOX "INBOX"
#define DEFAULT_TIMEOUT_S 60
#define DEFAULT_PUSH_TIMEOUT_S 30
#define DEFAULT_DELIVER_COUNT 100
#define DEFAULT_MIX                                                                                \
    "fetch-headers=40,fetch-body=20,fetch-bodystructure=10,search=10,store=10,append=5,noop=5"
#define DURATION_S_MAX (30.0 * 24 * 3600)
#define PATTERN_BYTES_MAX 128

static_assert(BENCH_IMAP_CONNECTIONS_MAX < UINT32_MAX / 2, "slot numbers fit in 32 bits");

enum option_id {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SOURCE,
    OPT_USERS,
    OPT_USER_PATTERN,
    OPT_PASSWORD,
    OPT_USER_COUNT,
    OPT_CONNECTIONS,
    OPT_THREADS,
    OPT_COUNT,
    OPT_DURATION,
    OPT_MIX,
    OPT_MAILBOX,
    OPT_TIMEOUT,
    OPT_SMTP,
    OPT_DELIVER_COUNT,
    OPT_PUSH_TIMEOUT,
    OPT_HOLD,
    OPT_HOLD_FILE,
    OPT_JSON,
    OPT_QUIET,
    OPT_SEED,
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"users", required_argument, NULL, OPT_USERS},
    {"user-pattern", required_argument, NULL, OPT_USER_PATTERN},
    {"password", required_argument, NULL, OPT_PASSWORD},
    {"user-count", required_argument, NULL, OPT_USER_COUNT},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"count", required_argument, NULL, OPT_COUNT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"mix", required_argument, NULL, OPT_MIX},
    {"mailbox", required_argument, NULL, OPT_MAILBOX},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"smtp", required_argument, NULL, OPT_SMTP},
    {"deliver-count", required_argument, NULL, OPT_DELIVER_COUNT},
    {"push-timeout", required_argument, NULL, OPT_PUSH_TIMEOUT},
    {"hold", required_argument, NULL, OPT_HOLD},
    {"hold-file", required_argument, NULL, OPT_HOLD_FILE},
    {"json", required_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"seed", required_argument, NULL, OPT_SEED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *const kind_names[BENCH_IMAP_KIND_COUNT] = {
    [BENCH_IMAP_KIND_FETCH_HEADERS] = "fetch-headers",
    [BENCH_IMAP_KIND_FETCH_BODY] = "fetch-body",
    [BENCH_IMAP_KIND_FETCH_BODYSTRUCTURE] = "fetch-bodystructure",
    [BENCH_IMAP_KIND_SEARCH] = "search",
    [BENCH_IMAP_KIND_STORE] = "store",
    [BENCH_IMAP_KIND_APPEND] = "append",
    [BENCH_IMAP_KIND_NOOP] = "noop",
    [BENCH_IMAP_KIND_LOGIN] = "login",
};

static int parse_double(const char *text, double min, double max, double *out);
static bool pattern_ok(const char *pattern);
static bool quotable(const char *s, size_t n);
static int usage_error(const struct bench_imap_options *options, const char *option,
                       const char *value, const char *why);

void
bench_imap_options_usage(FILE *out, enum bench_imap_mode mode)
{
    if (mode == BENCH_IMAP_MODE_IDLE) {
        (void)fputs(
            "usage: toaster-bench imap-idle --port P --smtp HOST:PORT [options]\n"
            "\n"
            "Open --connections IMAP sessions, LOGIN, SELECT INBOX and IDLE on each; once\n"
            "all are idling, deliver --deliver-count messages over SMTP (users in turn) and\n"
            "measure for every idling session the time from the SMTP 250 of the first\n"
            "message for its user to the \"* n EXISTS\" it is pushed.\n"
            "\n",
            out);
    } else {
        (void)fputs(
            "usage: toaster-bench imap --port P [options]\n"
            "\n"
            "Drive an IMAP server (toasterd, Dovecot, ...): every connection logs in,\n"
            "SELECTs --mailbox and runs commands from the weighted --mix in a closed loop,\n"
            "one command outstanding. Reports commands/s, latency per kind and errors\n"
            "(tagged NO and BAD count as errors).\n"
            "\n",
            out);
    }
    (void)fputs(
        "Target:\n"
        "  --host ADDR               IPv4 or IPv6 literal (default " DEFAULT_HOST ")\n"
        "  --port PORT               the IMAP port (required)\n"
        "  --source ADDR[,ADDR...]   source addresses to bind, in turn (about 28000\n"
        "                            ports each); imap-idle picks 127.0.0.x itself above\n"
        "                            20000 connections to a loopback server\n"
        "  --timeout SECONDS         longest wait for a connect or a response (default 60)\n"
        "\n"
        "Users:\n"
        "  --users FILE              user@domain:{PLAIN}password lines (toasterd's file)\n"
        "  --user-pattern PATTERN    or: user names, %d becomes 1..--user-count\n"
        "                            (default " DEFAULT_PATTERN ")\n"
        "  --password PW             password with --user-pattern (default " DEFAULT_PASSWORD ")\n"
        "  --user-count N            users 1..N (default 100; with --users: the first N)\n"
        "                            connection i logs in as user (i mod N) + 1\n"
        "\n"
        "Load:\n"
        "  --connections N           concurrent sessions (default 10)\n"
        "  --threads N               event-loop threads, one io_uring each (default 1)\n",
        out);
    if (mode == BENCH_IMAP_MODE_IDLE) {
        (void)fputs(
            "  --smtp HOST:PORT          where to deliver (required)\n"
            "  --deliver-count K         messages to deliver, one per user in turn (default 100)\n"
            "  --push-timeout SECONDS    wait this long after the last 250 (default 30)\n"
            "  --hold SECONDS            once all idle, wait this long before delivering\n"
            "                            (to read the server's memory; default 0)\n"
            "  --hold-file FILE          written when the hold starts\n",
            out);
    } else {
        (void)fputs(
            "  --count N                 commands in all (default 10000)\n"
            "  --duration SECONDS        or: start commands for this long, then finish\n"
            "  --mix KIND=W,...          weights of fetch-headers, fetch-body,\n"
            "                            fetch-bodystructure, search, store, append, noop,\n"
            "                            login (default " DEFAULT_MIX ");\n"
            "                            login=1 alone loops connect, LOGIN, SELECT, LOGOUT\n"
            "  --mailbox NAME            mailbox to SELECT and APPEND to (default INBOX)\n"
            "  --seed N                  seed for random choices (default 1)\n",
            out);
    }
    (void)fputs("\n"
                "Output:\n"
                "  --json FILE               also write the summary as JSON\n"
                "  --quiet                   no progress line, no summary (errors still show)\n"
                "  -h, --help                this text\n"
                "\n"
                "Exit status: 0 if nothing failed; 1 if any error (NO, BAD, connect, timeout,\n"
                "early close, malformed response; for imap-idle a session never pushed) was\n"
                "counted; 2 for usage errors.\n",
                out);
}

int
bench_imap_options_parse(int argc, char **argv, struct bench_imap_options *options)
{
    bool has_count = false;
    bool has_port = false;
    bool has_pattern = false;
    bool has_password = false;
    bool has_user_count = false;
    const char *sources_text = NULL;
    const char *host = DEFAULT_HOST;
    uint64_t port = 0;
    uint64_t value;

    memset(options, 0, sizeof(*options));
    options->mode = argc > 0 && strcmp(argv[0], "imap-idle") == 0 ? BENCH_IMAP_MODE_IDLE
                                                                  : BENCH_IMAP_MODE_COMMANDS;
    options->connections = DEFAULT_CONNECTIONS;
    options->threads = 1;
    options->count = DEFAULT_COUNT;
    options->user_pattern = DEFAULT_PATTERN;
    options->password = DEFAULT_PASSWORD;
    options->user_count = DEFAULT_USERS;
    options->mailbox = DEFAULT_MAILBOX;
    options->timeout_s = DEFAULT_TIMEOUT_S;
    options->push_timeout_s = DEFAULT_PUSH_TIMEOUT_S;
    options->deliver_count = DEFAULT_DELIVER_COUNT;
    options->seed = 1;
    bench_imap_options_mix_default(&options->mix);
    (void)snprintf(options->mix_text, sizeof(options->mix_text), "%s", DEFAULT_MIX);
    bool is_idle = options->mode == BENCH_IMAP_MODE_IDLE;

    optind = 1;
    opterr = 0;
    for (;;) {
        int id = getopt_long(argc, argv, ":h", long_options, NULL);
        if (id == -1) {
            break;
        }
        const char *arg = optarg;
        switch (id) {
        case 'h':
            bench_imap_options_usage(stdout, options->mode);
            return BENCH_IMAP_OPTIONS_HELP;
        case OPT_HOST:
            host = arg;
            break;
        case OPT_PORT:
            if (bench_args_u64(arg, 1, 65535, &port) < 0) {
                return usage_error(options, "--port", arg, "want 1..65535");
            }
            has_port = true;
            break;
        case OPT_SOURCE:
            sources_text = arg;
            break;
        case OPT_USERS:
            options->users_path = arg;
            break;
        case OPT_USER_PATTERN:
            if (!pattern_ok(arg)) {
                return usage_error(options, "--user-pattern", arg,
                                   "want a name with at most one %d, no spaces, quotes or "
                                   "backslashes, under 128 characters");
            }
            options->user_pattern = arg;
            has_pattern = true;
            break;
        case OPT_PASSWORD:
            if (strlen(arg) >= BENCH_IMAP_NAME_BYTES_MAX || !quotable(arg, strlen(arg))) {
                return usage_error(options, "--password", arg,
                                   "want under 256 characters without quotes, backslashes or "
                                   "control characters");
            }
            options->password = arg;
            has_password = true;
            break;
        case OPT_USER_COUNT:
            if (bench_args_u64(arg, 1, BENCH_IMAP_USERS_MAX, &value) < 0) {
                return usage_error(options, "--user-count", arg, "want 1..10000000");
            }
            options->user_count = (uint32_t)value;
            has_user_count = true;
            break;
        case OPT_CONNECTIONS:
            if (bench_args_u64(arg, 1, BENCH_IMAP_CONNECTIONS_MAX, &value) < 0) {
                return usage_error(options, "--connections", arg, "want 1..100000");
            }
            options->connections = (uint32_t)value;
            break;
        case OPT_THREADS:
            if (bench_args_u64(arg, 1, BENCH_IMAP_THREADS_MAX, &value) < 0) {
                return usage_error(options, "--threads", arg, "want 1..64");
            }
            options->threads = (uint32_t)value;
            break;
        case OPT_COUNT:
            if (is_idle) {
                return usage_error(options, "--count", NULL, "is for imap, not imap-idle");
            }
            if (bench_args_u64(arg, 1, UINT64_MAX / 2, &value) < 0) {
                return usage_error(options, "--count", arg, "want a positive number");
            }
            options->count = value;
            has_count = true;
            break;
        case OPT_DURATION:
            if (is_idle) {
                return usage_error(options, "--duration", NULL, "is for imap, not imap-idle");
            }
            if (parse_double(arg, 0.001, DURATION_S_MAX, &options->duration_s) < 0) {
                return usage_error(options, "--duration", arg, "want seconds, more than 0");
            }
            break;
        case OPT_MIX:
            if (is_idle) {
                return usage_error(options, "--mix", NULL, "is for imap, not imap-idle");
            }
            if (strlen(arg) >= sizeof(options->mix_text) ||
                bench_imap_options_mix(arg, &options->mix) < 0) {
                return usage_error(options, "--mix", arg,
                                   "want KIND=WEIGHT,... with kinds fetch-headers, fetch-body, "
                                   "fetch-bodystructure, search, store, append, noop, login, "
                                   "each once, some weight above 0");
            }
            (void)snprintf(options->mix_text, sizeof(options->mix_text), "%s", arg);
            break;
        case OPT_MAILBOX:
            if (arg[0] == '\0' || strlen(arg) >= BENCH_IMAP_MAILBOX_BYTES_MAX ||
                !quotable(arg, strlen(arg))) {
                return usage_error(options, "--mailbox", arg,
                                   "want a name under 200 characters without quotes, "
                                   "backslashes or control characters");
            }
            options->mailbox = arg;
            break;
        case OPT_TIMEOUT:
            if (bench_args_u64(arg, 1, BENCH_IMAP_TIMEOUT_S_MAX, &value) < 0) {
                return usage_error(options, "--timeout", arg, "want 1..3600 seconds");
            }
            options->timeout_s = (uint32_t)value;
            break;
        case OPT_SMTP:
            if (!is_idle) {
                return usage_error(options, "--smtp", NULL, "is for imap-idle");
            }
            if (bench_args_host_port(arg, &options->smtp, &options->smtp_bytes, options->smtp_text,
                                sizeof(options->smtp_text)) < 0) {
                return usage_error(options, "--smtp", arg, "want IPv4:PORT or [IPv6]:PORT");
            }
            break;
        case OPT_DELIVER_COUNT:
            if (!is_idle) {
                return usage_error(options, "--deliver-count", NULL, "is for imap-idle");
            }
            if (bench_args_u64(arg, 1, BENCH_IMAP_DELIVER_COUNT_MAX, &value) < 0) {
                return usage_error(options, "--deliver-count", arg, "want 1..10000000");
            }
            options->deliver_count = (uint32_t)value;
            break;
        case OPT_PUSH_TIMEOUT:
            if (!is_idle) {
                return usage_error(options, "--push-timeout", NULL, "is for imap-idle");
            }
            if (bench_args_u64(arg, 1, BENCH_IMAP_TIMEOUT_S_MAX, &value) < 0) {
                return usage_error(options, "--push-timeout", arg, "want 1..3600 seconds");
            }
            options->push_timeout_s = (uint32_t)value;
            break;
        case OPT_HOLD:
            if (!is_idle) {
                return usage_error(options, "--hold", NULL, "is for imap-idle");
            }
            if (bench_args_u64(arg, 1, BENCH_IMAP_TIMEOUT_S_MAX, &value) < 0) {
                return usage_error(options, "--hold", arg, "want 1..3600 seconds");
            }
            options->hold_s = (uint32_t)value;
            break;
        case OPT_HOLD_FILE:
            if (!is_idle) {
                return usage_error(options, "--hold-file", NULL, "is for imap-idle");
            }
            options->hold_file = arg;
            break;
        case OPT_JSON:
            options->json_path = arg;
            break;
        case OPT_QUIET:
            options->is_quiet = true;
            break;
        case OPT_SEED:
            if (bench_args_u64(arg, 0, UINT64_MAX, &options->seed) < 0) {
                return usage_error(options, "--seed", arg, "want a number");
            }
            break;
        case ':':
            return usage_error(options, argv[optind - 1], NULL, "needs a value");
        default:
            return usage_error(options, argv[optind - 1], NULL, "is not an option (see --help)");
        }
    }
    if (optind < argc) {
        return usage_error(options, argv[optind], NULL, "is not an option (see --help)");
    }

    /* Checks that involve more than one option. */
    if (!has_port) {
        return usage_error(options, "--port", NULL, "is required");
    }
    char host_port[80];
    bool is_v6 = strchr(host, ':') != NULL;
    if (strlen(host) > 64) {
        return usage_error(options, "--host", host, "want an IPv4 or IPv6 literal");
    }
    (void)snprintf(host_port, sizeof(host_port), is_v6 ? "[%s]:%" PRIu64 : "%s:%" PRIu64, host,
                   port);
    if (bench_args_host_port(host_port, &options->server, &options->server_bytes, options->server_text,
                        sizeof(options->server_text)) < 0) {
        return usage_error(options, "--host", host, "want an IPv4 or IPv6 literal");
    }
    if (options->users_path != NULL && (has_pattern || has_password)) {
        return usage_error(options, "--users", NULL,
                           "carries names and passwords; leave out --user-pattern and --password");
    }
    if (options->users_path == NULL && !has_user_count &&
        strstr(options->user_pattern, "%d") == NULL) {
        options->user_count = 1; /* one fixed name */
    }
    if (has_count && options->duration_s > 0) {
        return usage_error(options, "--count", NULL, "and --duration exclude each other");
    }
    if (options->duration_s > 0 || is_idle) {
        options->count = 0;
    }
    if (options->threads > options->connections) {
        return usage_error(options, "--threads", NULL, "must not exceed --connections");
    }
    if (is_idle && options->smtp_bytes == 0) {
        return usage_error(options, "--smtp", NULL, "is required");
    }
    if (sources_text != NULL &&
        bench_args_sources(sources_text, options->server.ss_family, options->sources,
                           BENCH_IMAP_SOURCES_MAX, &options->source_count,
                           &options->source_bytes) < 0) {
        return usage_error(options, "--source", sources_text,
                           "want IP literals of the server's family, comma-separated, at most 64");
    }
    return 0;
}

int
bench_imap_options_mix(const char *text, struct bench_imap_mix *mix_out)
{
    const char *cursor = text;
    char item[64];
    bool is_seen[BENCH_IMAP_KIND_COUNT] = {false};
    int rc;

    memset(mix_out, 0, sizeof(*mix_out));
    /* Each item moves the cursor on, so the loop ends within strlen(text)
     * rounds. */
    while ((rc = bench_args_list_next(&cursor, item, sizeof(item))) > 0) {
        char *eq = strchr(item, '=');
        if (eq == NULL) {
            return -EINVAL;
        }
        *eq = '\0';
        int kind = -1;
        for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
            if (strcmp(item, kind_names[k]) == 0) {
                kind = k;
                break;
            }
        }
        uint64_t weight;
        if (kind < 0 || is_seen[kind] ||
            bench_args_u64(eq + 1, 0, BENCH_IMAP_MIX_WEIGHT_MAX, &weight) < 0) {
            return -EINVAL;
        }
        is_seen[kind] = true;
        mix_out->weights[kind] = (uint32_t)weight;
        mix_out->weight_total += weight;
    }
    return rc == 0 && mix_out->weight_total > 0 ? 0 : -EINVAL;
}

void
bench_imap_options_mix_default(struct bench_imap_mix *mix_out)
{
    int rc = bench_imap_options_mix(DEFAULT_MIX, mix_out);
    ASSERT(rc == 0);
}

enum bench_imap_kind
bench_imap_options_mix_pick(const struct bench_imap_mix *mix, uint64_t r)
{
    ASSERT(mix->weight_total > 0);
    uint64_t x = r % mix->weight_total;
    for (int k = 0; k < BENCH_IMAP_KIND_COUNT; k++) {
        if (x < mix->weights[k]) {
            return (enum bench_imap_kind)k;
        }
        x -= mix->weights[k];
    }
    ASSERT(!"weights add up to weight_total");
    return BENCH_IMAP_KIND_NOOP;
}

const char *
bench_imap_options_kind_name(enum bench_imap_kind kind)
{
    ASSERT(kind >= 0 && kind < BENCH_IMAP_KIND_COUNT);
    return kind_names[kind];
}

int
bench_imap_options_user_line(const char *line, size_t line_bytes, char *user_out,
                             char *password_out)
{
    while (line_bytes > 0 && (line[line_bytes - 1] == '\n' || line[line_bytes - 1] == '\r')) {
        line_bytes--;
    }
    size_t start = 0;
    while (start < line_bytes && (line[start] == ' ' || line[start] == '\t')) {
        start++;
    }
    if (start == line_bytes || line[start] == '#') {
        return 1;
    }
    line += start;
    line_bytes -= start;
    const char *colon = memchr(line, ':', line_bytes);
    size_t user_bytes = colon != NULL ? (size_t)(colon - line) : line_bytes;
    if (user_bytes == 0 || user_bytes >= BENCH_IMAP_NAME_BYTES_MAX || !quotable(line, user_bytes) ||
        memchr(line, ' ', user_bytes) != NULL) {
        return -EINVAL;
    }
    memcpy(user_out, line, user_bytes);
    user_out[user_bytes] = '\0';
    password_out[0] = '\0';
    if (colon == NULL) {
        return 0;
    }
    const char *pw = colon + 1;
    size_t rest = line_bytes - user_bytes - 1;
    const char *end = memchr(pw, ':', rest);
    size_t pw_bytes = end != NULL ? (size_t)(end - pw) : rest;
    if (pw_bytes >= 7 && memcmp(pw, "{PLAIN}", 7) == 0) {
        pw += 7;
        pw_bytes -= 7;
    } else if (pw_bytes > 0 && pw[0] == '{') {
        return 0; /* a hash: no password we could send */
    }
    if (pw_bytes >= BENCH_IMAP_NAME_BYTES_MAX || !quotable(pw, pw_bytes)) {
        return -EINVAL;
    }
    memcpy(password_out, pw, pw_bytes);
    password_out[pw_bytes] = '\0';
    return 0;
}

/* Plain decimals only, unlike smtp's --rate and --duration: no sign, no
 * leading space, no "inf". */
static int
parse_double(const char *text, double min, double max, double *out)
{
    if ((text[0] < '0' || text[0] > '9') && text[0] != '.') {
        return -EINVAL;
    }
    return bench_args_double(text, min, max, out);
}

/* A user name pattern: at most one %d and no other %, quotable, no spaces. */
static bool
pattern_ok(const char *pattern)
{
    size_t n = strlen(pattern);
    if (n == 0 || n >= PATTERN_BYTES_MAX || !quotable(pattern, n) || strchr(pattern, ' ') != NULL) {
        return false;
    }
    const char *percent = strchr(pattern, '%');
    if (percent == NULL) {
        return true;
    }
    return percent[1] == 'd' && strchr(percent + 2, '%') == NULL;
}

/* Fits in an IMAP quoted string as it is. */
static bool
quotable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') {
            return false;
        }
    }
    return true;
}

static int
usage_error(const struct bench_imap_options *options, const char *option, const char *value,
            const char *why)
{
    const char *command = options->mode == BENCH_IMAP_MODE_IDLE ? "imap-idle" : "imap";
    return bench_args_usage_error(command, option, value, why);
}
