/*
 * bench/bench_smtp_options.h - the command line of toaster-bench smtp.
 *
 * Parses and checks every option up front, so the event loop never meets a
 * value it has to doubt. Usage errors print one line naming the option and
 * make the program exit 2.
 */
#ifndef TOASTER_BENCH_SMTP_OPTIONS_H
#define TOASTER_BENCH_SMTP_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "bench/bench_message.h"

#define BENCH_SMTP_CONNECTIONS_MAX 50000
#define BENCH_SMTP_THREADS_MAX 64
#define BENCH_SMTP_SOURCES_MAX 64
#define BENCH_SMTP_RCPTS_PER_MESSAGE_MAX 1000
#define BENCH_SMTP_USERS_MAX 100000000u
#define BENCH_SMTP_TIMEOUT_S_MAX 3600
#define BENCH_SMTP_HELO_BYTES_MAX 128

struct bench_smtp_options {
    struct sockaddr_storage server;
    socklen_t               server_bytes;
    char                    server_text[64];
    struct sockaddr_storage sources[BENCH_SMTP_SOURCES_MAX];
    socklen_t               source_bytes;
    uint32_t                source_count;
    uint32_t                connections;
    uint32_t                threads;
    uint32_t                messages_per_session; /* 0: never reconnect on purpose */
    uint64_t                count;                /* 0 when --duration is given */
    double                  duration_s;           /* 0 when --count is given */
    struct bench_message_class_spec classes[BENCH_MESSAGE_CLASSES_MAX];
    uint32_t                class_count;
    char                    size_text[128];       /* as given, for the summary */
    const char             *rcpt_pattern;
    uint32_t                users;
    uint32_t                rcpts_per_message;
    bool                    is_rcpt_random;
    const char             *from;
    const char             *helo;
    bool                    is_pipelining;
    bool                    is_bdat;
    bool                    is_starttls;          /* STARTTLS after EHLO, required */
    bool                    is_tls_resume;        /* offer the last session on reconnect */
    const char             *tls_sni;              /* SNI name, or NULL */
    double                  rate;                 /* msgs/s over all threads; 0: closed loop */
    uint32_t                timeout_s;
    const char             *json_path;
    bool                    is_quiet;
    uint64_t                seed;
};

/* Result of bench_smtp_options_parse() besides 0. */
#define BENCH_SMTP_OPTIONS_HELP 1

/* Parse argv (argv[0] is "smtp"). Returns 0, BENCH_SMTP_OPTIONS_HELP after
 * printing the usage to stdout, or -EINVAL after printing the reason to
 * stderr. Strings in *options point into argv. */
int bench_smtp_options_parse(int argc, char **argv, struct bench_smtp_options *options);

void bench_smtp_options_usage(FILE *out);

/* Parse "4k", "50k", "1m", "512" (bytes; k, m, g are powers of 1024).
 * Returns 0 or -EINVAL. */
int bench_smtp_options_size(const char *text, uint64_t *bytes_out);

#endif
