/*
 * core/toasterctl_sieve.c - `toasterctl sieve-test` (see toasterctl_sieve.h).
 *
 * Runs the same code delivery runs (filters/sieve_exec) on one script
 * alone, with the daemon's configured limits and periods, and a private
 * key-value store (duplicate and vacation tracking start empty, so a
 * test never touches the daemon's). The message file is read whole,
 * within TOASTERCTL_SIEVE_MESSAGE_BYTES_MAX; nothing is delivered or sent.
 */
#define _GNU_SOURCE
#include "core/toasterctl_sieve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/sieve_settings.h"
#include "core/span.h"
#include "filters/sieve_exec.h"
#include "filters/sieve_validate.h"
#include "store/recipients.h"

#define SIEVE_TEST_PATH_BYTES 4096u
#define SIEVE_TEST_SUBJECT_BYTES 1024u /* the "Auto: ..." subject shown */

struct sieve_test_args {
    const char *script_path;
    const char *message_path;
    const char *from;
    const char *to;
    const char *user;
};

static void
sieve_test_usage(void)
{
    (void)fprintf(stderr,
                  "usage: toasterctl [-c FILE] sieve-test SCRIPT MESSAGE [-f FROM] [-a TO] "
                  "[-u USER]\n");
}

static int
parse_args(int argc, char **argv, struct sieve_test_args *args)
{
    memset(args, 0, sizeof(*args));
    int positional = 0;
    for (int i = 0; i < argc; i++) {
        const char **option = NULL;
        if (strcmp(argv[i], "-f") == 0) {
            option = &args->from;
        } else if (strcmp(argv[i], "-a") == 0) {
            option = &args->to;
        } else if (strcmp(argv[i], "-u") == 0) {
            option = &args->user;
        }
        if (option != NULL) {
            if (i + 1 >= argc || *option != NULL) {
                return -EINVAL;
            }
            *option = argv[++i];
        } else if (positional == 0) {
            args->script_path = argv[i];
            positional++;
        } else if (positional == 1) {
            args->message_path = argv[i];
            positional++;
        } else {
            return -EINVAL;
        }
    }
    return positional == 2 ? 0 : -EINVAL;
}

/* The whole file, bounded. */
static int
read_message(const char *path, char **bytes_out, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        (void)close(fd); /* read-only: nothing to lose */
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        (void)close(fd);
        return -EINVAL;
    }
    if ((uint64_t)st.st_size > TOASTERCTL_SIEVE_MESSAGE_BYTES_MAX) {
        (void)close(fd);
        return -EFBIG;
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    if (buf == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int rc = -errno;
            free(buf);
            (void)close(fd);
            return rc;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd);
    if (len == cap) {
        free(buf);
        return -EFBIG; /* grew while read */
    }
    *bytes_out = buf;
    *len_out = len;
    return 0;
}

/* Where the body starts: after the first empty line (CRLF or LF), or
 * the end when there is none. */
static size_t
body_offset(const char *m, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (i == 0 || m[i - 1] == '\n') {
            if (m[i] == '\n') {
                return i + 1;
            }
            if (m[i] == '\r' && i + 1 < len && m[i + 1] == '\n') {
                return i + 2;
            }
        }
    }
    return len;
}

/* The Subject field's value, unfolded and trimmed, into out. */
static void
original_subject(const char *header, size_t len, char *out, size_t out_bytes)
{
    out[0] = '\0';
    size_t pos = 0;
    while (pos < len) {
        size_t line_end = pos;
        while (line_end < len && header[line_end] != '\n') {
            line_end++;
        }
        if (line_end == pos || (line_end == pos + 1 && header[pos] == '\r')) {
            return; /* end of the header block */
        }
        if (line_end - pos >= 8 && strncasecmp(header + pos, "subject:", 8) == 0) {
            size_t o = 0;
            size_t i = pos + 8;
            for (;;) {
                for (; i < line_end && header[i] != '\r'; i++) {
                    if (o + 1 < out_bytes && (o > 0 || (header[i] != ' ' && header[i] != '\t'))) {
                        out[o++] = header[i];
                    }
                }
                /* A continuation line starts with white space. */
                if (line_end + 1 < len && (header[line_end + 1] == ' ' ||
                                           header[line_end + 1] == '\t')) {
                    i = line_end + 1;
                    line_end = i;
                    while (line_end < len && header[line_end] != '\n') {
                        line_end++;
                    }
                    continue;
                }
                break;
            }
            while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t')) {
                o--;
            }
            out[o] = '\0';
            return;
        }
        pos = line_end + 1;
    }
}

/* text as a Sieve quoted string. */
static void
print_quoted(const char *text, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"' || text[i] == '\\') {
            putchar('\\');
        }
        putchar(text[i]);
    }
    putchar('"');
}

static void
print_flags(const char *flags)
{
    if (flags == NULL) {
        return;
    }
    bool is_first = true;
    const char *p = flags;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *end = p;
        while (*end != '\0' && *end != ' ') {
            end++;
        }
        if (end > p) {
            if (is_first) {
                fputs(" :flags", stdout);
                is_first = false;
            }
            putchar(' ');
            print_quoted(p, (size_t)(end - p));
        }
        p = end;
    }
}

static void
print_actions(const struct sieve_actions *actions, const struct sieve_message *message)
{
    for (size_t i = 0; i < actions->count; i++) {
        const struct sieve_action *a = &actions->items[i];
        const char *target = a->target != NULL ? a->target : "";
        size_t target_len = a->target != NULL ? a->target_len : 0;
        switch (a->type) {
        case SIEVE_ACTION_KEEP:
            fputs("keep", stdout);
            print_flags(a->flags);
            break;
        case SIEVE_ACTION_DISCARD:
            fputs("discard", stdout);
            break;
        case SIEVE_ACTION_FILEINTO:
            fputs("fileinto ", stdout);
            print_quoted(target, target_len);
            print_flags(a->flags);
            break;
        case SIEVE_ACTION_REDIRECT:
            fputs("redirect ", stdout);
            print_quoted(target, target_len);
            break;
        case SIEVE_ACTION_REJECT:
            fputs("reject ", stdout);
            print_quoted(target, target_len);
            break;
        case SIEVE_ACTION_EREJECT:
            fputs("ereject ", stdout);
            print_quoted(target, target_len);
            break;
        case SIEVE_ACTION_VACATION: {
            const struct sieve_vacation *v = a->vacation;
            const char *to = v != NULL && v->reply_to != NULL ? v->reply_to : "";
            char subject[SIEVE_TEST_SUBJECT_BYTES];
            if (v != NULL && v->subject != NULL) {
                (void)snprintf(subject, sizeof(subject), "%s", v->subject);
            } else {
                /* What the reply will carry (RFC 5230 5.5): "Auto: " and
                 * the original subject. */
                char original[SIEVE_TEST_SUBJECT_BYTES - 8];
                original_subject(message->header, message->header_len, original,
                                 sizeof(original));
                (void)snprintf(subject, sizeof(subject), "Auto: %s", original);
            }
            fputs("vacation ", stdout);
            print_quoted(to, strlen(to));
            putchar(' ');
            print_quoted(subject, strlen(subject));
            break;
        }
        }
        putchar('\n');
    }
}

/* The user's home and Maildir from the users table. Returns 0, or 1
 * with the reason printed. */
static int
find_user(const struct config *config, const char *address, char *mailbox_out,
          size_t mailbox_bytes, char *maildir_out, char *home_out, size_t path_bytes)
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
    struct recipients_result result = {
        .mailboxes = mailboxes,
        .mailbox_capacity = ALIAS_EXPANSION_MAX,
        .remotes = remotes,
        .remote_capacity = ALIAS_EXPANSION_MAX,
    };
    enum recipients_status status =
        recipients_resolve(table, span_make(address, strlen(address)), &result);
    int exit_code = 0;
    if (status != RECIPIENTS_OK || result.mailbox_count == 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: %s is not a local user\n", address);
        exit_code = 1;
    } else if (snprintf(mailbox_out, mailbox_bytes, "%s", result.mailboxes[0]) >=
                   (int)mailbox_bytes ||
               recipients_maildir_path(config->data_dir, result.mailboxes[0], maildir_out,
                                       path_bytes) != 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: %s: no usable Maildir path\n", address);
        exit_code = 1;
    } else {
        /* The home is the Maildir's parent, as ManageSieve keeps it. */
        (void)snprintf(home_out, path_bytes, "%s", maildir_out);
        char *slash = strrchr(home_out, '/');
        if (slash == NULL || slash == home_out) {
            (void)fprintf(stderr, "toasterctl: sieve-test: %s: no home directory\n", address);
            exit_code = 1;
        } else {
            *slash = '\0';
        }
    }
    recipients_destroy(&table);
    return exit_code;
}

static int32_t
local_zone_minutes(int64_t now)
{
    time_t t = (time_t)now;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL) {
        return 0;
    }
    return (int32_t)(tm.tm_gmtoff / 60);
}

int
toasterctl_sieve_test(const struct config *config, int argc, char **argv)
{
    struct sieve_test_args args;
    if (parse_args(argc, argv, &args) != 0) {
        sieve_test_usage();
        return 2;
    }

    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_exec_compile_file(args.script_path, config->sieve_max_script_size, &script,
                                     &errors);
    if (rc == -EINVAL || rc == -EFBIG) {
        for (size_t i = 0; i < errors.count; i++) {
            if (errors.items[i].line > 0) {
                (void)fprintf(stderr, "line %u: %s\n", (unsigned)errors.items[i].line,
                              errors.items[i].text);
            } else {
                (void)fprintf(stderr, "%s\n", errors.items[i].text);
            }
        }
        if (errors.is_truncated) {
            (void)fprintf(stderr, "(more errors follow)\n");
        }
        return 2;
    }
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: %s: %s\n", args.script_path,
                      strerror(-rc));
        return 1;
    }

    char *message_bytes = NULL;
    size_t message_len = 0;
    rc = read_message(args.message_path, &message_bytes, &message_len);
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: %s: %s\n", args.message_path,
                      rc == -EFBIG ? "message too large" : strerror(-rc));
        sieve_script_free(&script);
        return 1;
    }

    static char mailbox[SIEVE_TEST_PATH_BYTES];
    static char maildir[SIEVE_TEST_PATH_BYTES];
    static char home[SIEVE_TEST_PATH_BYTES];
    struct sieve_exec_user user = {0};
    bool has_user = false;
    if (args.user != NULL) {
        if (find_user(config, args.user, mailbox, sizeof(mailbox), maildir, home,
                      sizeof(home)) != 0) {
            free(message_bytes);
            sieve_script_free(&script);
            return 1;
        }
        user.user = mailbox;
        user.home = home;
        user.maildir = maildir;
        has_user = true;
    }

    /* Only the script given runs: no global scripts around it. */
    struct sieve_exec_settings settings;
    sieve_settings_from_config(config, NULL, &settings);
    settings.before = "";
    settings.after = "";
    settings.cache_entries_max = 64;
    struct sieve_exec *exec = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    rc = sieve_exec_create(&settings, &exec, err, sizeof(err));
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: %s\n", err);
        free(message_bytes);
        sieve_script_free(&script);
        return 1;
    }

    int64_t now = (int64_t)time(NULL);
    size_t body_at = body_offset(message_bytes, message_len);
    struct sieve_message message = {
        .header = message_bytes,
        .header_len = body_at,
        .body = message_bytes + body_at,
        .body_len = message_len - body_at,
        .envelope_from = args.from,
        .envelope_to = args.to != NULL ? args.to : (has_user ? mailbox : NULL),
        .auth_user = NULL,
        .user = has_user ? mailbox : args.to,
        .size_bytes = message_len,
        .now_unix = now,
        .zone_minutes = local_zone_minutes(now),
        .is_virus_scanned = false,
    };
    struct sieve_actions actions;
    rc = sieve_exec_run_script(exec, has_user ? &user : NULL, script, &message, &actions, err,
                               sizeof(err));
    print_actions(&actions, &message);
    int exit_code = 0;
    if (rc < 0) {
        (void)fprintf(stderr, "toasterctl: sieve-test: the script failed (implicit keep): %s\n",
                      err);
        exit_code = 1;
    }
    if (fflush(stdout) != 0) {
        exit_code = 1;
    }
    sieve_actions_free(&actions);
    sieve_exec_destroy(&exec);
    free(message_bytes);
    sieve_script_free(&script);
    return exit_code;
}
