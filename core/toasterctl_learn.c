/*
 * core/toasterctl_learn.c - `toasterctl learn` (see toasterctl_learn.h).
 * Paths are made absolute before they are sent, since the daemon opens
 * them itself; the daemon reads each file on its control thread, so a
 * large corpus goes one file at a time and never blocks mail.
 */
#define _GNU_SOURCE
#include "core/toasterctl_learn.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/control.h"

#define LEARN_TIMEOUT_MS 30000
#define LEARN_FILES_MAX 1000000u /* per run; a bound against a runaway walk */

struct learn_tally {
    const char *socket_path;
    bool is_spam;
    unsigned long learned;
    unsigned long already;
    unsigned long skipped; /* no text to learn from */
    unsigned long failed;
    unsigned long files;
    char totals[64]; /* the daemon's last word on what Bayes knows */
};

static void
learn_file(struct learn_tally *tally, const char *path)
{
    if (tally->files++ >= LEARN_FILES_MAX) {
        return;
    }
    char request[CONTROL_REQUEST_BYTES_MAX];
    int n = snprintf(request, sizeof(request), "learn %s %s", tally->is_spam ? "spam" : "ham",
                     path);
    if (n < 0 || (size_t)n >= sizeof(request)) {
        (void)fprintf(stderr, "toasterctl: %s: path too long\n", path);
        tally->failed++;
        return;
    }
    char answer[512];
    int len = control_request(tally->socket_path, request, answer, sizeof(answer),
                              LEARN_TIMEOUT_MS);
    if (len < 0) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", tally->socket_path, strerror(-len));
        tally->failed++;
        return;
    }
    const char *spam = strstr(answer, "\"spam\":");
    const char *ham = strstr(answer, "\"ham\":");
    if (spam != NULL && ham != NULL) {
        (void)snprintf(tally->totals, sizeof(tally->totals), "%llu spam and %llu ham",
                       strtoull(spam + 7, NULL, 10), strtoull(ham + 6, NULL, 10));
    }
    if (strstr(answer, "\"result\":\"learned\"") != NULL) {
        tally->learned++;
    } else if (strstr(answer, "\"result\":\"already\"") != NULL) {
        tally->already++;
    } else if (strstr(answer, "\"result\":\"no-text\"") != NULL) {
        tally->skipped++;
    } else {
        (void)fprintf(stderr, "toasterctl: %s: %s", path, answer);
        tally->failed++;
    }
}

/* Every regular file directly in dir (names starting with '.' skipped). */
static void
learn_dir_files(struct learn_tally *tally, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        struct stat st;
        if (n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            learn_file(tally, path);
        }
    }
    (void)closedir(d);
}

static void
learn_path(struct learn_tally *tally, const char *given)
{
    char path[PATH_MAX];
    if (realpath(given, path) == NULL) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", given, strerror(errno));
        tally->failed++;
        return;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", given, strerror(errno));
        tally->failed++;
        return;
    }
    if (S_ISREG(st.st_mode)) {
        learn_file(tally, path);
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        (void)fprintf(stderr, "toasterctl: %s: not a file or directory\n", given);
        tally->failed++;
        return;
    }
    /* A Maildir (or a Maildir++ folder): its cur/ and new/. */
    char sub[PATH_MAX];
    bool is_maildir = false;
    for (int i = 0; i < 2; i++) {
        int n = snprintf(sub, sizeof(sub), "%s/%s", path, i == 0 ? "cur" : "new");
        struct stat sub_st;
        if (n > 0 && (size_t)n < sizeof(sub) && stat(sub, &sub_st) == 0 &&
            S_ISDIR(sub_st.st_mode)) {
            is_maildir = true;
            learn_dir_files(tally, sub);
        }
    }
    if (!is_maildir) {
        learn_dir_files(tally, path);
    }
}

int
toasterctl_learn(const struct config *config, int argc, char **argv)
{
    struct learn_tally tally = { .socket_path = config->control_socket_path };
    if (argc < 2 || (strcmp(argv[0], "spam") != 0 && strcmp(argv[0], "ham") != 0)) {
        (void)fprintf(stderr, "usage: toasterctl learn spam|ham [--socket PATH] FILE|DIR...\n");
        return 2;
    }
    tally.is_spam = strcmp(argv[0], "spam") == 0;
    int path_count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            tally.socket_path = argv[++i];
            continue;
        }
        learn_path(&tally, argv[i]);
        path_count++;
    }
    if (path_count == 0) {
        (void)fprintf(stderr, "usage: toasterctl learn spam|ham [--socket PATH] FILE|DIR...\n");
        return 2;
    }
    printf("learned %lu as %s, %lu known already, %lu without text, %lu failed\n",
           tally.learned, tally.is_spam ? "spam" : "ham", tally.already, tally.skipped,
           tally.failed);
    if (tally.totals[0] != '\0') {
        printf("Bayes has learned %s messages\n", tally.totals);
    }
    return tally.failed > 0 ? 1 : 0;
}
