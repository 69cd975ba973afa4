/*
 * bench/bench_imap_options.h - the command lines of toaster-bench imap and
 * toaster-bench imap-idle, and the command mix.
 *
 * Parses and checks every option up front, so the event loop never meets a
 * value it has to doubt. Usage errors print one line naming the option and
 * make the program exit 2. Strings in the options point into argv.
 */
#ifndef TOASTER_BENCH_IMAP_OPTIONS_H
#define TOASTER_BENCH_IMAP_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#define BENCH_IMAP_CONNECTIONS_MAX 100000
#define BENCH_IMAP_THREADS_MAX 64
#define BENCH_IMAP_SOURCES_MAX 64
#define BENCH_IMAP_USERS_MAX 10000000u
#define BENCH_IMAP_TIMEOUT_S_MAX 3600
#define BENCH_IMAP_DELIVER_COUNT_MAX 10000000u
#define BENCH_IMAP_MAILBOX_BYTES_MAX 200
#define BENCH_IMAP_NAME_BYTES_MAX 256 /* user names and passwords, each */
#define BENCH_IMAP_MIX_WEIGHT_MAX 1000000u

/* The kinds of work a connection does; the order of the summary. */
enum bench_imap_kind {
    BENCH_IMAP_KIND_FETCH_HEADERS,
    BENCH_IMAP_KIND_FETCH_BODY,
    BENCH_IMAP_KIND_FETCH_BODYSTRUCTURE,
    BENCH_IMAP_KIND_SEARCH,
    BENCH_IMAP_KIND_STORE,
    BENCH_IMAP_KIND_APPEND,
    BENCH_IMAP_KIND_NOOP,
    BENCH_IMAP_KIND_LOGIN, /* connect, LOGIN, SELECT (timed), LOGOUT */
    BENCH_IMAP_KIND_COUNT,
};

enum bench_imap_mode {
    BENCH_IMAP_MODE_COMMANDS, /* toaster-bench imap */
    BENCH_IMAP_MODE_IDLE,     /* toaster-bench imap-idle */
};

struct bench_imap_mix {
    uint32_t weights[BENCH_IMAP_KIND_COUNT];
    uint64_t weight_total; /* > 0 */
};

struct bench_imap_options {
    enum bench_imap_mode mode;
    struct sockaddr_storage server;
    socklen_t server_bytes;
    char server_text[64];
    struct sockaddr_storage sources[BENCH_IMAP_SOURCES_MAX];
    socklen_t source_bytes;
    uint32_t source_count;
    const char *users_path;   /* --users FILE, or NULL */
    const char *user_pattern; /* --user-pattern, used when users_path is NULL */
    const char *password;
    uint32_t user_count;
    uint32_t connections;
    uint32_t threads;
    uint64_t count;    /* commands in all; 0 when --duration is given */
    double duration_s; /* 0 when --count is given */
    struct bench_imap_mix mix;
    char mix_text[256]; /* as given, for the summary */
    const char *mailbox;
    uint32_t timeout_s;
    /* imap-idle only. */
    struct sockaddr_storage smtp;
    socklen_t smtp_bytes;
    char smtp_text[64];
    uint32_t deliver_count;
    uint32_t push_timeout_s;
    const char *json_path;
    uint32_t hold_s;         /* imap-idle: wait this long once all idle, before delivering */
    const char *hold_file;   /* imap-idle: written when the hold starts */
    bool is_quiet;
    uint64_t seed;
};

/* Result of bench_imap_options_parse() besides 0. */
#define BENCH_IMAP_OPTIONS_HELP 1

/* Parse argv; argv[0] is "imap" or "imap-idle" and sets the mode. Returns
 * 0, BENCH_IMAP_OPTIONS_HELP after printing the usage to stdout, or
 * -EINVAL after printing the reason to stderr. */
int bench_imap_options_parse(int argc, char **argv, struct bench_imap_options *options);

void bench_imap_options_usage(FILE *out, enum bench_imap_mode mode);

/* Parse a mix, "fetch-headers=40,noop=5,...": every name at most once,
 * weights 0..BENCH_IMAP_MIX_WEIGHT_MAX, at least one weight above 0.
 * Kinds not named get 0. Returns 0 or -EINVAL (mix_out unspecified). */
int bench_imap_options_mix(const char *text, struct bench_imap_mix *mix_out);

/* The mix used without --mix. */
void bench_imap_options_mix_default(struct bench_imap_mix *mix_out);

/* The kind a uniform random number r picks from the mix: kind k is chosen
 * for r % weight_total in its cumulative range. */
enum bench_imap_kind bench_imap_options_mix_pick(const struct bench_imap_mix *mix, uint64_t r);

/* The name of a kind in --mix and in the reports ("fetch-headers"). */
const char *bench_imap_options_kind_name(enum bench_imap_kind kind);

/* One line of a users file: "user@domain:{PLAIN}password" (also
 * "user:password", "user:{SCHEME}..." with a scheme other than PLAIN
 * giving no password) with extra ":field" tails ignored. Returns 0 and
 * copies the user and password (NUL-terminated, empty when absent) into
 * buffers of BENCH_IMAP_NAME_BYTES_MAX, 1 for a blank or '#' line, or
 * -EINVAL for a line without a user, or fields too long or holding
 * characters an IMAP quoted string cannot carry ('"', '\\', controls). */
int bench_imap_options_user_line(const char *line, size_t line_bytes, char *user_out,
                                 char *password_out);

#endif
