/*
 * bench/toaster_bench.c - toaster-bench, the bundled load generator.
 *
 * Picks the subcommand and hands it the rest of the command line, plus the
 * whole command line shell-quoted, which every result records. Today there
 * are three: smtp (bench/bench_smtp.c), imap and imap-idle
 * (bench/bench_imap.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_imap.h"
#include "bench/bench_smtp.h"
#include "core/assertions.h"

/* Characters a shell takes literally: such arguments need no quotes. */
#define SHELL_PLAIN_CHARS                                                                          \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+"

/* The command line as one string a shell would read back the same. */
static char *
command_quote(int argc, char **argv)
{
    size_t bytes = 1;
    for (int i = 0; i < argc; i++) {
        bytes += strlen(argv[i]) * 4 + 3; /* every ' becomes '\'' */
    }
    char *out = malloc(bytes);
    if (out == NULL) {
        return NULL;
    }
    size_t n = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool is_plain = arg[0] != '\0' && strspn(arg, SHELL_PLAIN_CHARS) == strlen(arg);
        if (i > 0) {
            out[n++] = ' ';
        }
        if (is_plain) {
            memcpy(out + n, arg, strlen(arg));
            n += strlen(arg);
            continue;
        }
        out[n++] = '\'';
        for (const char *p = arg; *p != '\0'; p++) {
            if (*p == '\'') {
                memcpy(out + n, "'\\''", 4);
                n += 4;
            } else {
                out[n++] = *p;
            }
        }
        out[n++] = '\'';
    }
    ASSERT(n < bytes);
    out[n] = '\0';
    return out;
}

static void
usage(FILE *out)
{
    (void)fputs("usage: toaster-bench COMMAND [options]\n"
                "\n"
                "commands:\n"
                "  smtp       drive an SMTP server and report throughput and latency\n"
                "  imap       drive an IMAP server with a command mix; commands/s, latency\n"
                "  imap-idle  IDLE many IMAP sessions, deliver over SMTP, time the pushes\n"
                "\n"
                "toaster-bench COMMAND --help describes each command.\n",
                out);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return BENCH_EXIT_OK;
    }
    bool is_imap = strcmp(argv[1], "imap") == 0 || strcmp(argv[1], "imap-idle") == 0;
    if (strcmp(argv[1], "smtp") != 0 && !is_imap) {
        (void)fprintf(stderr, "toaster-bench: unknown command %s\n", argv[1]);
        usage(stderr);
        return BENCH_EXIT_USAGE;
    }
    char *command = command_quote(argc, argv);
    if (command == NULL) {
        (void)fprintf(stderr, "toaster-bench: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    int status = is_imap ? bench_imap_main(argc - 1, argv + 1, command)
                         : bench_smtp_main(argc - 1, argv + 1, command);
    free(command);
    return status;
}
