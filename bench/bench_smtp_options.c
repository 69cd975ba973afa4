/*
 * bench/bench_smtp_options.c - command line of toaster-bench smtp.
 *
 * Owns nothing: the parsed options point into argv. Runs once on the main
 * thread before anything connects. Every bound the event loop relies on
 * (connections, threads, recipients, address lengths, sizes) is checked
 * here and named in the message when broken.
 */
#include "bench/bench_smtp_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_args.h"
#include "bench/bench_tls.h"
#include "core/assertions.h"

#define DEFAULT_SERVER "127.0.0.1:2525"
#define DEFAULT_CONNECTIONS 10
#define DEFAULT_MESSAGES_PER_SESSION 100
#define DEFAULT_COUNT 10000
#define DEFAULT_SIZE (4 * 1024)
#define DEFAULT_RCPT "user%d@example.test"
#define DEFAULT_USERS 100
#define DEFAULT_FROM "sender@example.test"
#define DEFAULT_HELO "toaster-bench.example.test"
#define DEFAULT_TIMEOUT_S 60
#define DURATION_S_MAX (30.0 * 24 * 3600)
#define RATE_MAX 10000000.0

enum option_id {
    OPT_SERVER = 256,
    OPT_SOURCE,
    OPT_CONNECTIONS,
    OPT_THREADS,
    OPT_MESSAGES_PER_SESSION,
    OPT_COUNT,
    OPT_DURATION,
    OPT_SIZE,
    OPT_SIZE_MIX,
    OPT_RCPT,
    OPT_USERS,
    OPT_RCPTS_PER_MESSAGE,
    OPT_RCPT_ORDER,
    OPT_FROM,
    OPT_HELO,
    OPT_PIPELINING,
    OPT_BDAT,
    OPT_STARTTLS,
    OPT_TLS_RESUME,
    OPT_TLS_SNI,
    OPT_RATE,
    OPT_TIMEOUT,
    OPT_JSON,
    OPT_QUIET,
    OPT_SEED,
};

static const struct option long_options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"source", required_argument, NULL, OPT_SOURCE},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"messages-per-session", required_argument, NULL, OPT_MESSAGES_PER_SESSION},
    {"count", required_argument, NULL, OPT_COUNT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"size", required_argument, NULL, OPT_SIZE},
    {"size-mix", required_argument, NULL, OPT_SIZE_MIX},
    {"rcpt", required_argument, NULL, OPT_RCPT},
    {"users", required_argument, NULL, OPT_USERS},
    {"rcpts-per-message", required_argument, NULL, OPT_RCPTS_PER_MESSAGE},
    {"rcpt-order", required_argument, NULL, OPT_RCPT_ORDER},
    {"from", required_argument, NULL, OPT_FROM},
    {"helo", required_argument, NULL, OPT_HELO},
    {"pipelining", required_argument, NULL, OPT_PIPELINING},
    {"bdat", no_argument, NULL, OPT_BDAT},
    {"starttls", no_argument, NULL, OPT_STARTTLS},
    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
    {"tls-sni", required_argument, NULL, OPT_TLS_SNI},
    {"rate", required_argument, NULL, OPT_RATE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"json", required_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"seed", required_argument, NULL, OPT_SEED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_server(const char *text, struct bench_smtp_options *options);
static int parse_size_mix(const char *text, struct bench_smtp_options *options);
static int usage_error(const char *option, const char *value, const char *why);
static bool is_host_name(const char *text);

void
bench_smtp_options_usage(FILE *out)
{
    (void)fputs(
        "usage: toaster-bench smtp [options]\n"
        "\n"
        "Drive an SMTP server (toasterd, Postfix, ...) with many concurrent sessions and\n"
        "report accepted messages per second, MB/s and the latency from the end of the\n"
        "data to the final reply. Connects only where --server says.\n"
        "\n"
        "Target:\n"
        "  --server HOST:PORT        IPv4 or [IPv6] literal (default " DEFAULT_SERVER ")\n"
        "  --source ADDR[,ADDR...]   source addresses to bind, used in turn; each gives\n"
        "                            about 28000 ports, so more connections need more\n"
        "  --helo NAME               name sent with EHLO (default " DEFAULT_HELO ")\n"
        "  --timeout SECONDS         longest wait for a connect or a reply (default 60)\n"
        "\n"
        "Load:\n"
        "  --connections N           concurrent sessions, 1..50000 (default 10)\n"
        "  --threads N               event-loop threads, one io_uring each (default 1)\n"
        "  --messages-per-session N  messages before QUIT and a new connection;\n"
        "                            0 keeps each connection (default 100)\n"
        "  --count N                 messages to send in all (default 10000)\n"
        "  --duration SECONDS        or: start messages for this long, then finish\n"
        "  --rate R                  open loop: start R messages per second overall;\n"
        "                            without it each session sends its next message as\n"
        "                            soon as the last is answered (closed loop)\n"
        "\n"
        "Messages:\n"
        "  --size SIZE               every message exactly SIZE bytes: 2000, 4k, 1m\n"
        "                            (default 4k; k, m are 1024, 1024^2)\n"
        "  --size-mix SIZE:W,...     sizes picked by weight, e.g. 4k:70,50k:25,1m:5;\n"
        "                            from 16k up a message is MIME multipart with a\n"
        "                            base64 attachment\n"
        "  --from ADDRESS            envelope sender and From: (default " DEFAULT_FROM ")\n"
        "  --rcpt PATTERN            recipient, %d becomes a user number\n"
        "                            (default " DEFAULT_RCPT ")\n"
        "  --users N                 user numbers 1..N (default 100)\n"
        "  --rcpts-per-message N     recipients per message, 1..1000 (default 1)\n"
        "  --rcpt-order rr|random    users in turn (default) or at random\n"
        "  --seed N                  seed for random choices (default 1)\n"
        "\n"
        "Protocol:\n"
        "  --pipelining on|off       on: MAIL, RCPT and DATA in one write when the\n"
        "                            server advertises PIPELINING (default on)\n"
        "  --bdat                    send the message as one BDAT LAST chunk when the\n"
        "                            server advertises CHUNKING (else DATA)\n"
        "  --starttls                after EHLO, STARTTLS and a TLS 1.2/1.3 handshake\n"
        "                            (no certificate check), EHLO again, then every\n"
        "                            message of the session encrypted; a server that\n"
        "                            does not offer STARTTLS ends the run with an error\n"
        "  --tls-resume              with --starttls: a new connection offers the\n"
        "                            session (ticket) of the slot's last one\n"
        "  --tls-sni NAME            with --starttls: the server name to send (SNI)\n"
        "\n"
        "Output:\n"
        "  --json FILE               also write the summary as JSON\n"
        "  --quiet                   no progress line, no summary (errors still show)\n"
        "  -h, --help                this text\n"
        "\n"
        "A progress line is shown once a second when stdout is a terminal.\n"
        "Exit status: 0 if every message got 250 and no error was counted; 1 if a\n"
        "message was refused or failed, or any error (connect, timeout, early close,\n"
        "refused command) was counted; 2 for usage errors.\n",
        out);
}

int
bench_smtp_options_parse(int argc, char **argv, struct bench_smtp_options *options)
{
    bool has_count = false;
    bool has_size = false;
    const char *sources_text = NULL;
    uint64_t value;
    int rc;

    memset(options, 0, sizeof(*options));
    options->connections = DEFAULT_CONNECTIONS;
    options->threads = 1;
    options->messages_per_session = DEFAULT_MESSAGES_PER_SESSION;
    options->count = DEFAULT_COUNT;
    options->rcpt_pattern = DEFAULT_RCPT;
    options->users = DEFAULT_USERS;
    options->rcpts_per_message = 1;
    options->from = DEFAULT_FROM;
    options->helo = DEFAULT_HELO;
    options->is_pipelining = true;
    options->timeout_s = DEFAULT_TIMEOUT_S;
    options->seed = 1;
    options->classes[0].size_bytes = DEFAULT_SIZE;
    options->classes[0].weight = 100;
    options->class_count = 1;
    (void)snprintf(options->size_text, sizeof(options->size_text), "4k");
    rc = parse_server(DEFAULT_SERVER, options);
    ASSERT(rc == 0);

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
            bench_smtp_options_usage(stdout);
            return BENCH_SMTP_OPTIONS_HELP;
        case OPT_SERVER:
            if (parse_server(arg, options) < 0) {
                return usage_error("--server", arg, "want IPv4:PORT or [IPv6]:PORT");
            }
            break;
        case OPT_SOURCE:
            sources_text = arg;
            break;
        case OPT_CONNECTIONS:
            if (bench_args_u64(arg, 1, BENCH_SMTP_CONNECTIONS_MAX, &value) < 0) {
                return usage_error("--connections", arg, "want 1..50000");
            }
            options->connections = (uint32_t)value;
            break;
        case OPT_THREADS:
            if (bench_args_u64(arg, 1, BENCH_SMTP_THREADS_MAX, &value) < 0) {
                return usage_error("--threads", arg, "want 1..64");
            }
            options->threads = (uint32_t)value;
            break;
        case OPT_MESSAGES_PER_SESSION:
            if (bench_args_u64(arg, 0, UINT32_MAX, &value) < 0) {
                return usage_error("--messages-per-session", arg, "want a number, 0 for no limit");
            }
            options->messages_per_session = (uint32_t)value;
            break;
        case OPT_COUNT:
            if (bench_args_u64(arg, 1, UINT64_MAX / 2, &value) < 0) {
                return usage_error("--count", arg, "want a positive number");
            }
            options->count = value;
            has_count = true;
            break;
        case OPT_DURATION:
            if (bench_args_double(arg, 0.001, DURATION_S_MAX, &options->duration_s) < 0) {
                return usage_error("--duration", arg, "want seconds, more than 0");
            }
            break;
        case OPT_SIZE:
            if (has_size) {
                return usage_error("--size", arg, "give --size or --size-mix, once");
            }
            if (bench_smtp_options_size(arg, &value) < 0 || value == 0 ||
                value > BENCH_MESSAGE_BYTES_MAX) {
                return usage_error("--size", arg, "want bytes with k or m, at most 256m");
            }
            options->classes[0].size_bytes = (size_t)value;
            options->classes[0].weight = 100;
            options->class_count = 1;
            (void)snprintf(options->size_text, sizeof(options->size_text), "%s", arg);
            has_size = true;
            break;
        case OPT_SIZE_MIX:
            if (has_size) {
                return usage_error("--size-mix", arg, "give --size or --size-mix, once");
            }
            if (parse_size_mix(arg, options) < 0) {
                return usage_error("--size-mix", arg,
                                   "want SIZE:WEIGHT,... (at most 16, weights add up to > 0)");
            }
            (void)snprintf(options->size_text, sizeof(options->size_text), "%s", arg);
            has_size = true;
            break;
        case OPT_RCPT:
            if (!bench_message_address_ok(arg, true)) {
                return usage_error("--rcpt", arg,
                                   "want local@domain with at most one %d, no spaces or <>, "
                                   "under 128 characters");
            }
            options->rcpt_pattern = arg;
            break;
        case OPT_USERS:
            if (bench_args_u64(arg, 1, BENCH_SMTP_USERS_MAX, &value) < 0) {
                return usage_error("--users", arg, "want 1..100000000");
            }
            options->users = (uint32_t)value;
            break;
        case OPT_RCPTS_PER_MESSAGE:
            if (bench_args_u64(arg, 1, BENCH_SMTP_RCPTS_PER_MESSAGE_MAX, &value) < 0) {
                return usage_error("--rcpts-per-message", arg, "want 1..1000");
            }
            options->rcpts_per_message = (uint32_t)value;
            break;
        case OPT_RCPT_ORDER:
            if (strcmp(arg, "rr") == 0 || strcmp(arg, "round-robin") == 0) {
                options->is_rcpt_random = false;
            } else if (strcmp(arg, "random") == 0) {
                options->is_rcpt_random = true;
            } else {
                return usage_error("--rcpt-order", arg, "want rr or random");
            }
            break;
        case OPT_FROM:
            if (!bench_message_address_ok(arg, false)) {
                return usage_error("--from", arg,
                                   "want local@domain, no spaces or <>, under 128 characters");
            }
            options->from = arg;
            break;
        case OPT_HELO:
            if (arg[0] == '\0' || strlen(arg) >= BENCH_SMTP_HELO_BYTES_MAX ||
                strpbrk(arg, " \t\r\n") != NULL) {
                return usage_error("--helo", arg, "want a host name without spaces");
            }
            options->helo = arg;
            break;
        case OPT_PIPELINING:
            if (strcmp(arg, "on") == 0) {
                options->is_pipelining = true;
            } else if (strcmp(arg, "off") == 0) {
                options->is_pipelining = false;
            } else {
                return usage_error("--pipelining", arg, "want on or off");
            }
            break;
        case OPT_BDAT:
            options->is_bdat = true;
            break;
        case OPT_STARTTLS:
            options->is_starttls = true;
            break;
        case OPT_TLS_RESUME:
            options->is_tls_resume = true;
            break;
        case OPT_TLS_SNI:
            if (!is_host_name(arg)) {
                return usage_error("--tls-sni", arg,
                                   "want a host name: letters, digits, '-' and '.', at most 253");
            }
            options->tls_sni = arg;
            break;
        case OPT_RATE:
            if (bench_args_double(arg, 0.001, RATE_MAX, &options->rate) < 0) {
                return usage_error("--rate", arg, "want messages per second, more than 0");
            }
            break;
        case OPT_TIMEOUT:
            if (bench_args_u64(arg, 1, BENCH_SMTP_TIMEOUT_S_MAX, &value) < 0) {
                return usage_error("--timeout", arg, "want 1..3600 seconds");
            }
            options->timeout_s = (uint32_t)value;
            break;
        case OPT_JSON:
            options->json_path = arg;
            break;
        case OPT_QUIET:
            options->is_quiet = true;
            break;
        case OPT_SEED:
            if (bench_args_u64(arg, 0, UINT64_MAX, &options->seed) < 0) {
                return usage_error("--seed", arg, "want a number");
            }
            break;
        case ':':
            return usage_error(argv[optind - 1], NULL, "needs a value");
        default:
            return usage_error(argv[optind - 1], NULL, "is not an option (see --help)");
        }
    }
    if (optind < argc) {
        return usage_error(argv[optind], NULL, "is not an option (see --help)");
    }

    /* Checks that involve more than one option. */
    if (has_count && options->duration_s > 0) {
        return usage_error("--count", NULL, "and --duration exclude each other");
    }
    if (options->duration_s > 0) {
        options->count = 0;
    }
    if (options->is_tls_resume && !options->is_starttls) {
        return usage_error("--tls-resume", NULL, "needs --starttls");
    }
    if (options->tls_sni != NULL && !options->is_starttls) {
        return usage_error("--tls-sni", NULL, "needs --starttls");
    }
    if (options->threads > options->connections) {
        return usage_error("--threads", NULL, "must not exceed --connections");
    }
    if (sources_text != NULL &&
        bench_args_sources(sources_text, options->server.ss_family, options->sources,
                           BENCH_SMTP_SOURCES_MAX, &options->source_count,
                           &options->source_bytes) < 0) {
        return usage_error("--source", sources_text,
                           "want IP literals of the server's family, comma-separated, at most 64");
    }
    return 0;
}

int
bench_smtp_options_size(const char *text, uint64_t *bytes_out)
{
    char *end = NULL;

    if (text[0] < '0' || text[0] > '9') {
        return -EINVAL;
    }
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno != 0 || end == text) {
        return -EINVAL;
    }
    uint64_t unit = 1;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        unit = 1024;
        end++;
        break;
    case 'm':
    case 'M':
        unit = 1024 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        unit = 1024 * 1024 * 1024;
        end++;
        break;
    default:
        return -EINVAL;
    }
    if (*end == 'b' || *end == 'B') {
        end++;
    }
    if (*end != '\0' || n > UINT64_MAX / unit) {
        return -EINVAL;
    }
    *bytes_out = (uint64_t)n * unit;
    return 0;
}

/* "1.2.3.4:25" or "[::1]:25" into the server address and its text. */
static int
parse_server(const char *text, struct bench_smtp_options *options)
{
    return bench_args_host_port(text, &options->server, &options->server_bytes,
                                options->server_text, sizeof(options->server_text));
}

static int
parse_size_mix(const char *text, struct bench_smtp_options *options)
{
    const char *cursor = text;
    char item[64];
    uint64_t weight_total = 0;
    int rc;

    options->class_count = 0;
    while ((rc = bench_args_list_next(&cursor, item, sizeof(item))) > 0) {
        if (options->class_count == BENCH_MESSAGE_CLASSES_MAX) {
            return -EINVAL;
        }
        char *colon = strchr(item, ':');
        if (colon == NULL) {
            return -EINVAL;
        }
        *colon = '\0';
        uint64_t size;
        uint64_t weight;
        if (bench_smtp_options_size(item, &size) < 0 || size == 0 ||
            size > BENCH_MESSAGE_BYTES_MAX ||
            bench_args_u64(colon + 1, 0, 1000000, &weight) < 0) {
            return -EINVAL;
        }
        options->classes[options->class_count].size_bytes = (size_t)size;
        options->classes[options->class_count].weight = (uint32_t)weight;
        options->class_count++;
        weight_total += weight;
    }
    return rc == 0 && options->class_count > 0 && weight_total > 0 ? 0 : -EINVAL;
}

/* A DNS name as SNI carries it: labels of letters, digits and '-', dots
 * between them, no IP literal check (a server may want anything). */
static bool
is_host_name(const char *text)
{
    size_t length = strlen(text);
    size_t label = 0;

    if (length == 0 || length > BENCH_TLS_SNI_BYTES_MAX) {
        return false;
    }
    for (size_t i = 0; i < length; i++) {
        char ch = text[i];
        if (ch == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            continue;
        }
        bool is_ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-';
        if (!is_ok || ++label > 63) {
            return false;
        }
    }
    return label > 0;
}

static int
usage_error(const char *option, const char *value, const char *why)
{
    return bench_args_usage_error("smtp", option, value, why);
}
