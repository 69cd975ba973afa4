/*
 * core/toasterctl.c - the operator's tool.
 *
 * Without a running daemon, from the configuration and the tables on disk:
 *   toasterctl [-c FILE] config            the effective configuration
 *   toasterctl [-c FILE] resolve ADDRESS…  where mail for each address goes,
 *                                          as the SMTP server would decide
 * From a running daemon, over its control socket (core/control.h):
 *   toasterctl [-c FILE] stats [--json] [--watch] [--socket PATH]
 *                                          counters, rates and latency
 * Later versions add users, queue and reload over the control socket.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control.h"
#include "core/limits.h"
#include "core/stats.h"
#include "store/recipients.h"

/* How long one stats request may take before toasterctl gives up. */
#define TOASTERCTL_TIMEOUT_MS 5000

static void
usage(FILE *out)
{
    (void)fprintf(out, "usage: toasterctl [-c FILE] config\n"
                       "       toasterctl [-c FILE] resolve ADDRESS...\n"
                       "       toasterctl [-c FILE] stats [--json] [--watch] [--socket PATH]\n");
}

static int
resolve(const struct config *config, int count, char **addresses)
{
    struct recipients *table = NULL;
    char err[1024] = "";
    int rc = recipients_load_config(config, &table, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    static const char *mailboxes[ALIAS_EXPANSION_MAX];
    static const char *remotes[ALIAS_EXPANSION_MAX];
    int status = 0;
    for (int i = 0; i < count; i++) {
        struct recipients_result result = {
            .mailboxes = mailboxes,
            .mailbox_capacity = ALIAS_EXPANSION_MAX,
            .remotes = remotes,
            .remote_capacity = ALIAS_EXPANSION_MAX,
        };
        enum recipients_status verdict =
            recipients_resolve(table, span_make(addresses[i], strlen(addresses[i])), &result);
        switch (verdict) {
        case RECIPIENTS_OK:
            for (size_t j = 0; j < result.mailbox_count && j < result.mailbox_capacity; j++) {
                char path[4096];
                if (recipients_maildir_path(config->data_dir, result.mailboxes[j], path,
                                            sizeof(path)) != 0) {
                    (void)snprintf(path, sizeof(path), "(unsafe name)");
                }
                printf("%s: mailbox %s %s\n", addresses[i], result.mailboxes[j], path);
            }
            for (size_t j = 0; j < result.remote_count && j < result.remote_capacity; j++) {
                printf("%s: remote %s\n", addresses[i], result.remotes[j]);
            }
            break;
        case RECIPIENTS_UNKNOWN_USER:
            printf("%s: unknown user (550 5.1.1)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_NOT_LOCAL:
        case RECIPIENTS_RELAY_FORM:
            printf("%s: not local, relay denied (554 5.7.1)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_ALIAS_LOOP:
            printf("%s: alias loop or nesting too deep (451 4.3.0)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_TOO_MANY:
            printf("%s: expands to too many mailboxes (451 4.3.0)\n", addresses[i]);
            status = 1;
            break;
        case RECIPIENTS_SYNTAX:
            printf("%s: bad address syntax (501 5.1.3)\n", addresses[i]);
            status = 1;
            break;
        }
    }
    recipients_destroy(&table);
    return status;
}

/* One stats document from the daemon: its text in text (for --json) and
 * parsed into snapshot. Returns 0, or 1 with the reason printed. */
static int
stats_fetch(const char *socket_path, char *text, size_t text_bytes, struct stats_snapshot *snapshot)
{
    int len = control_request(socket_path, "stats", text, text_bytes, TOASTERCTL_TIMEOUT_MS);
    if (len == -ENOENT || len == -ECONNREFUSED) {
        (void)fprintf(stderr, "toasterctl: toasterd is not running (nothing answers on %s)\n",
                      socket_path);
        return 1;
    }
    if (len < 0) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", socket_path, strerror(-len));
        return 1;
    }
    if (stats_json_parse(text, (size_t)len, snapshot) != 0) {
        (void)fprintf(stderr, "toasterctl: %s: the answer is not a stats document\n", socket_path);
        return 1;
    }
    if (snapshot->error[0] != '\0') {
        (void)fprintf(stderr, "toasterctl: toasterd answered: %s\n", snapshot->error);
        return 1;
    }
    return 0;
}

static double
seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* toasterctl stats: once, or every second until interrupted (--watch). */
static int
stats(const struct config *config, int argc, char **argv)
{
    bool is_json = false;
    bool is_watch = false;
    const char *socket_path = config->control_socket_path;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            is_json = true;
        } else if (strcmp(argv[i], "--watch") == 0) {
            is_watch = true;
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            socket_path = argv[++i];
        } else if (strncmp(argv[i], "--socket=", 9) == 0) {
            socket_path = argv[i] + 9;
        } else {
            usage(stderr);
            return 2;
        }
    }
    static char text[STATS_JSON_BYTES_MAX + 1];
    static struct stats_snapshot snapshots[2];
    struct stats_snapshot *now = &snapshots[0];
    struct stats_snapshot *prev = NULL;
    struct timespec now_time;
    struct timespec prev_time = { 0 };
    struct timespec next;
    (void)clock_gettime(CLOCK_MONOTONIC, &next);
    /* Once, or until SIGINT ends the process: nothing to clean up then.
     * Ctrl-C must work even when started with SIGINT ignored (a shell's
     * background job inherits that). */
    if (is_watch) {
        (void)signal(SIGINT, SIG_DFL);
    }
    for (;;) {
        int rc = stats_fetch(socket_path, text, sizeof(text), now);
        if (rc != 0) {
            return rc;
        }
        (void)clock_gettime(CLOCK_MONOTONIC, &now_time);
        if (is_json) {
            (void)fputs(text, stdout);
        } else {
            if (is_watch) {
                (void)fputs("\033[H\033[2J", stdout); /* home, clear: redraw like top */
            }
            stats_table_print(stdout, now, prev,
                              prev != NULL ? seconds_between(&prev_time, &now_time) : 0.0);
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
            return 1;
        }
        if (!is_watch) {
            return 0;
        }
        prev = now;
        prev_time = now_time;
        now = now == &snapshots[0] ? &snapshots[1] : &snapshots[0];
        /* Absolute deadlines, so the refresh stays on a one-second beat;
         * after a slow answer, start a new beat rather than catch up. */
        next.tv_sec += 1;
        if (seconds_between(&now_time, &next) < 0.0) {
            next = now_time;
            next.tv_sec += 1;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
        }
    }
}

int
main(int argc, char **argv)
{
    const char *config_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "+c:h")) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    static struct config config;
    config_defaults(&config);
    char err[1024];
    if (config_path != NULL && config_load_file(&config, config_path, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 1;
    }
    if (config_finish(&config, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 1;
    }
    const char *command = argv[optind];
    if (strcmp(command, "config") == 0 && optind + 1 == argc) {
        config_dump(&config, STDOUT_FILENO);
        return 0;
    }
    if (strcmp(command, "resolve") == 0 && optind + 1 < argc) {
        return resolve(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "stats") == 0) {
        return stats(&config, argc - optind - 1, argv + optind + 1);
    }
    usage(stderr);
    return 2;
}
