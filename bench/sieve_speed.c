/*
 * bench/sieve_speed.c - how many Sieve executions one core makes per
 * second with toaster's delivery chain (filters/sieve_exec), issue 7.
 *
 *   sieve_speed [--seconds S] [--rounds N] [--bytes N]
 *
 * Builds a user's home in a temporary directory (a whitelist and a
 * blacklist of 50 entries each, a Maildir with a few folders) and a
 * plain-text message of exactly --bytes (default 4096) bytes, then
 * measures two chains, each for N rounds (default 5) of S/N seconds
 * (S default 2), and prints the median round:
 *   default: sieve_before = builtin (the shipped global script: whitelist
 *            and blacklist lookups, the spam flag), no user script;
 *   user:    no global script, a typical user script (.dovecot.sieve:
 *            five fileinto rules on :contains header tests and a
 *            vacation).
 * Each execution is what a delivery pays: sieve_exec_run() (stat of the
 * user's script and lists, cache lookups, the interpreter) and
 * sieve_actions_free(). The results are checked once before timing.
 * One thread; rates per second of this thread's CPU time (other load on
 * a shared machine does not lower them), wall-clock rates too. Output:
 *   sieve default bytes=4096 rounds=5 runs=123456 median_per_cpu_s=61728.0 min=... max=...
 * Bounds: 0.1 to 60 seconds, 1 to 99 rounds, 512 bytes to 1 MiB.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_clock.h"
#include "filters/sieve_exec.h"

int main(int argc, char **argv);

#define BENCH_SECONDS_MIN 0.1
#define BENCH_SECONDS_MAX 60.0
#define BENCH_ROUNDS_MAX 99
#define BENCH_BYTES_MIN 512u
#define BENCH_BYTES_MAX (1024u * 1024u)
#define BENCH_PATH_BYTES 512u

static const char user_script[] =
    "require [\"fileinto\", \"vacation\"];\n"
    "if header :contains \"list-id\" \"dev.lists.example\" {\n"
    "    fileinto \"Lists.dev\";\n"
    "} elsif header :contains \"subject\" [\"invoice\", \"receipt\"] {\n"
    "    fileinto \"Finance\";\n"
    "} elsif header :contains \"from\" \"newsletter@\" {\n"
    "    fileinto \"News\";\n"
    "} elsif header :contains [\"to\", \"cc\"] \"team@bench.example\" {\n"
    "    fileinto \"Team\";\n"
    "} elsif header :contains \"subject\" \"[jira]\" {\n"
    "    fileinto \"Tickets\";\n"
    "}\n"
    "vacation :days 7 :subject \"Out of office\" :addresses [\"bob@example.net\"]\n"
    "    \"I am away until Monday. Mail is read then.\";\n";

static void
usage(void)
{
    (void)fprintf(stderr, "usage: sieve_speed [--seconds S] [--rounds N] [--bytes N]\n");
    exit(2);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        (void)fprintf(stderr, "sieve_speed: %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

static void
make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0) {
        (void)fprintf(stderr, "sieve_speed: mkdir %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* A list of 50 entries: addresses and a few "@domain" lines. */
static void
write_list(const char *path, const char *tag)
{
    char text[8192];
    size_t used = (size_t)snprintf(text, sizeof(text), "# %s\n", tag);
    for (int i = 0; i < 50; i++) {
        int n = i % 10 == 0 ? snprintf(text + used, sizeof(text) - used, "@%s%d.example\n", tag, i)
                            : snprintf(text + used, sizeof(text) - used,
                                       "person%d@%s.example\n", i, tag);
        if (n < 0 || (size_t)n >= sizeof(text) - used) {
            exit(2);
        }
        used += (size_t)n;
    }
    write_file(path, text);
}

/* A plain-text message of exactly bytes: a usual header block (with the
 * spam filter's score, under the threshold) and lines of words. */
static char *
message_make(size_t bytes)
{
    static const char header[] = "Return-Path: <alice@bench.example>\r\n"
                                 "Received: from mx.bench.example (mx.bench.example [192.0.2.1])\r\n"
                                 "\tby mx.example.net with ESMTPS id 4711; Fri, 04 Dec 2026\r\n"
                                 "X-Spam-Score: 1.3\r\n"
                                 "X-Spam-Status: No, score=1.3 required=6\r\n"
                                 "From: Alice Example <alice@bench.example>\r\n"
                                 "To: Bob Example <bob@example.net>\r\n"
                                 "Cc: carol@example.net\r\n"
                                 "Subject: Quarterly figures, third draft\r\n"
                                 "Date: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
                                 "Message-ID: <20261204120000.4711@bench.example>\r\n"
                                 "MIME-Version: 1.0\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "\r\n";
    static const char line[] = "the figures for this quarter are attached below and we meet\r\n";
    char *m = malloc(bytes + 1);
    if (m == NULL || bytes < sizeof(header) + 2) {
        exit(2);
    }
    size_t len = sizeof(header) - 1;
    memcpy(m, header, len);
    while (len + sizeof(line) - 1 <= bytes - 2) {
        memcpy(m + len, line, sizeof(line) - 1);
        len += sizeof(line) - 1;
    }
    while (len < bytes - 2) {
        m[len++] = '.';
    }
    m[len++] = '\r';
    m[len++] = '\n';
    m[len] = '\0';
    return m;
}

static int
compare_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static void
bench_chain(const char *name, struct sieve_exec *exec, const struct sieve_exec_user *user,
            const struct sieve_message *message, const char *want, double seconds, int rounds)
{
    char err[SIEVE_EXEC_ERROR_BYTES];
    struct sieve_actions actions;
    /* Check the answer once: a benchmark of the wrong result is no use. */
    int rc = sieve_exec_run(exec, user, message, &actions, err, sizeof(err));
    bool is_ok = rc == 0 && actions.count > 0 &&
                 (want == NULL ? actions.items[0].type == SIEVE_ACTION_KEEP
                               : actions.items[0].type == SIEVE_ACTION_VACATION);
    sieve_actions_free(&actions);
    if (!is_ok) {
        (void)fprintf(stderr, "sieve_speed: %s: unexpected result (rc %d: %s)\n", name, rc, err);
        exit(1);
    }
    double per_cpu[BENCH_ROUNDS_MAX];
    double per_wall[BENCH_ROUNDS_MAX];
    uint64_t total = 0;
    for (int r = 0; r < rounds; r++) {
        struct bench_clock start;
        struct bench_clock now;
        bench_clock_now(&start);
        uint64_t runs = 0;
        do {
            for (int i = 0; i < 64; i++) {
                rc = sieve_exec_run(exec, user, message, &actions, err, sizeof(err));
                sieve_actions_free(&actions);
                if (rc != 0) {
                    (void)fprintf(stderr, "sieve_speed: %s: %s\n", name, err);
                    exit(1);
                }
            }
            runs += 64;
            bench_clock_now(&now);
        } while (bench_seconds_between(&start.wall, &now.wall) < seconds / rounds);
        per_cpu[r] = (double)runs / bench_seconds_between(&start.cpu, &now.cpu);
        per_wall[r] = (double)runs / bench_seconds_between(&start.wall, &now.wall);
        total += runs;
    }
    qsort(per_cpu, (size_t)rounds, sizeof(per_cpu[0]), compare_double);
    qsort(per_wall, (size_t)rounds, sizeof(per_wall[0]), compare_double);
    (void)printf("sieve %s bytes=%zu rounds=%d runs=%llu median_per_cpu_s=%.1f min=%.1f max=%.1f "
                 "median_per_wall_s=%.1f\n",
                 name, (size_t)message->size_bytes, rounds, (unsigned long long)total,
                 per_cpu[rounds / 2], per_cpu[0], per_cpu[rounds - 1], per_wall[rounds / 2]);
    (void)fflush(stdout);
}

static struct sieve_exec *
exec_make(const char *before)
{
    struct sieve_exec_settings settings = {.before = before, .after = ""};
    struct sieve_exec *exec = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    if (sieve_exec_create(&settings, &exec, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "sieve_speed: %s\n", err);
        exit(1);
    }
    return exec;
}

int
main(int argc, char **argv)
{
    double seconds = 2.0;
    int rounds = 5;
    size_t bytes = 4096;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            usage();
        }
        char *end = NULL;
        if (strcmp(argv[i], "--seconds") == 0) {
            seconds = strtod(argv[++i], &end);
            if (*end != '\0' || !(seconds >= BENCH_SECONDS_MIN && seconds <= BENCH_SECONDS_MAX)) {
                usage();
            }
        } else if (strcmp(argv[i], "--rounds") == 0) {
            long n = strtol(argv[++i], &end, 10);
            if (*end != '\0' || n < 1 || n > BENCH_ROUNDS_MAX) {
                usage();
            }
            rounds = (int)n;
        } else if (strcmp(argv[i], "--bytes") == 0) {
            unsigned long long n = strtoull(argv[++i], &end, 10);
            if (*end != '\0' || n < BENCH_BYTES_MIN || n > BENCH_BYTES_MAX) {
                usage();
            }
            bytes = (size_t)n;
        } else {
            usage();
        }
    }

    char root[] = "/tmp/sieve_speed.XXXXXX";
    if (mkdtemp(root) == NULL) {
        perror("sieve_speed: mkdtemp");
        return 2;
    }
    char home[BENCH_PATH_BYTES];
    char maildir[BENCH_PATH_BYTES + 16];
    char path[BENCH_PATH_BYTES + 64];
    (void)snprintf(home, sizeof(home), "%s/home", root);
    (void)snprintf(maildir, sizeof(maildir), "%s/Maildir", home);
    make_dir(home);
    make_dir(maildir);
    static const char *const subdirs[] = {"sieve", "sieve/lists", "Maildir/cur", "Maildir/new",
                                          "Maildir/tmp", "Maildir/.Junk", "Maildir/.Finance"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", home, subdirs[i]);
        make_dir(path);
    }
    (void)snprintf(path, sizeof(path), "%s/sieve/lists/whitelist", home);
    write_list(path, "friend");
    (void)snprintf(path, sizeof(path), "%s/sieve/lists/blacklist", home);
    write_list(path, "foe");

    char *text = message_make(bytes);
    size_t header_len = (size_t)(strstr(text, "\r\n\r\n") - text) + 4;
    struct sieve_message message = {
        .header = text,
        .header_len = header_len,
        .body = text + header_len,
        .body_len = bytes - header_len,
        .envelope_from = "alice@bench.example",
        .envelope_to = "bob@example.net",
        .user = "bob@example.net",
        .size_bytes = bytes,
        .now_unix = 1796385600,
    };
    struct sieve_exec_user user = {.user = "bob@example.net", .home = home, .maildir = maildir};

    struct sieve_exec *exec = exec_make(SIEVE_EXEC_BUILTIN);
    bench_chain("default", exec, &user, &message, NULL, seconds / 2, rounds);
    sieve_exec_destroy(&exec);

    (void)snprintf(path, sizeof(path), "%s/.dovecot.sieve", home);
    write_file(path, user_script);
    exec = exec_make("");
    bench_chain("user", exec, &user, &message, "vacation", seconds / 2, rounds);
    sieve_exec_destroy(&exec);

    free(text);
    char command[BENCH_PATH_BYTES + 16];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", root);
    if (system(command) != 0) {
        (void)fprintf(stderr, "sieve_speed: could not remove %s\n", root);
    }
    return 0;
}
