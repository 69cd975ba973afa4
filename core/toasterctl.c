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
 *   toasterctl [-c FILE] reload [--socket PATH]
 *                                          reread users and aliases (SIGHUP)
 * Editing users_file (store/users_edit.h), then asking the daemon to reload:
 *   toasterctl [-c FILE] user add|passwd [--scheme S] [--password-file F] USER
 *   toasterctl [-c FILE] user del USER
 *   toasterctl [-c FILE] user list
 * The password never comes from the command line (ps would show it): from
 * the terminal without echo (twice), else one line of stdin or of F.
 * DKIM signing keys (filters/dkim_keys.h), without the daemon:
 *   toasterctl [-c FILE] dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N]
 *                  [--dir DIR]           a new key (0600), the TXT record to
 *                                        publish and the dkim_key line to add
 * The outbound queue (core/toasterctl_queue.h), on its files, telling a
 * running daemon where it must:
 *   toasterctl [-c FILE] queue list|show|hold|release|delete|flush ...
 * The DNS records to publish for a hosted domain (core/toasterctl_dns.h):
 *   toasterctl [-c FILE] dns DOMAIN
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/control.h"
#include "core/toasterctl_dns.h"
#include "core/toasterctl_learn.h"
#include "core/toasterctl_queue.h"
#include "core/toasterctl_sieve.h"
#include "core/limits.h"
#include "core/stats.h"
#include "filters/dkim_keys.h"
#include "store/recipients.h"
#include "store/users_edit.h"

/* How long one stats request may take before toasterctl gives up. */
#define TOASTERCTL_TIMEOUT_MS 5000
/* A reload reads every table and waits for each reactor: give it longer
 * than the daemon's own wait (RELOAD_ANSWER_WAIT_MS in core/main.c). */
#define TOASTERCTL_RELOAD_TIMEOUT_MS 30000
static_assert(USERS_EDIT_PASSWORD_BYTES_MAX == 511, "password_get() names the limit");

static void
usage(FILE *out)
{
    (void)fprintf(out, "usage: toasterctl [-c FILE] config\n"
                       "       toasterctl [-c FILE] resolve ADDRESS...\n"
                       "       toasterctl [-c FILE] stats [--json] [--watch] [--socket PATH]\n"
                       "       toasterctl [-c FILE] reload [--socket PATH]\n"
                       "       toasterctl [-c FILE] user add|passwd [--password-file FILE]\n"
                       "                  [--scheme YESCRYPT|SHA512-CRYPT|BLF-CRYPT] "
                       "[--socket PATH] USER\n"
                       "       toasterctl [-c FILE] user del [--socket PATH] USER\n"
                       "       toasterctl [-c FILE] user list\n"
                       "       toasterctl [-c FILE] dkim keygen DOMAIN SELECTOR [--ed25519] "
                       "[--bits N] [--dir DIR]\n"
                       "       toasterctl [-c FILE] dns DOMAIN\n"
                       "       toasterctl [-c FILE] learn spam|ham [--socket PATH] FILE|DIR...\n"
                       "       toasterctl [-c FILE] sieve-test SCRIPT MESSAGE [-f FROM] [-a TO] "
                       "[-u USER]\n"
                       "       toasterctl [-c FILE] queue list [--json]\n"
                       "       toasterctl [-c FILE] queue show ID\n"
                       "       toasterctl [-c FILE] queue hold [--reason TEXT] ID...|ALL\n"
                       "       toasterctl [-c FILE] queue release|delete ID...|ALL\n"
                       "       toasterctl [-c FILE] queue flush [--socket PATH] [ID...]\n"
                       "The password is read from the terminal (without echo), else from the\n"
                       "first line of stdin or of --password-file; never from the command line.\n");
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

/* ---- reload ------------------------------------------------------------------ */

/* Ask the daemon to reread users and aliases and wait for the result.
 * is_quiet_absent: a daemon that is not running is fine (the tables are
 * read at start). Returns 0, or 1 with the reason printed. */
static int
reload_request(const char *socket_path, bool is_quiet_absent)
{
    char answer[512];
    int len = control_request(socket_path, "reload", answer, sizeof(answer),
                              TOASTERCTL_RELOAD_TIMEOUT_MS);
    if (len == -ENOENT || len == -ECONNREFUSED) {
        if (is_quiet_absent) {
            printf("toasterd is not running (nothing answers on %s); it reads the file when "
                   "it starts\n",
                   socket_path);
            return 0;
        }
        (void)fprintf(stderr, "toasterctl: toasterd is not running (nothing answers on %s)\n",
                      socket_path);
        return 1;
    }
    if (len < 0) {
        (void)fprintf(stderr, "toasterctl: %s: %s; send toasterd SIGHUP to reload\n", socket_path,
                      strerror(-len));
        return 1;
    }
    if (strstr(answer, "\"reload\":\"done\"") != NULL) {
        const char *users = strstr(answer, "\"users\":");
        printf("toasterd reloaded its configuration, certificates, users and aliases "
               "(%llu users)\n",
               users != NULL ? strtoull(users + 8, NULL, 10) : 0ULL);
        return 0;
    }
    if (strstr(answer, "\"reload\":\"failed\"") != NULL) {
        (void)fprintf(stderr, "toasterctl: toasterd could not reload (configuration, "
                              "certificates, users or aliases) and keeps what it had; its log "
                              "says why\n");
        return 1;
    }
    if (strstr(answer, "\"reload\":\"pending\"") != NULL) {
        (void)fprintf(stderr, "toasterctl: toasterd has not finished reloading yet; its log "
                              "will say how it ended\n");
        return 1;
    }
    if (strstr(answer, "unknown command") != NULL) {
        (void)fprintf(stderr, "toasterctl: this toasterd has no reload request; send it "
                              "SIGHUP\n");
        return 1;
    }
    (void)fprintf(stderr, "toasterctl: toasterd answered: %s", answer);
    return 1;
}

/* Parse "--socket PATH" / "--socket=PATH" at argv[*i]; true when it was one. */
static bool
socket_option(int argc, char **argv, int *i, const char **socket_path)
{
    if (strcmp(argv[*i], "--socket") == 0 && *i + 1 < argc) {
        *socket_path = argv[++*i];
        return true;
    }
    if (strncmp(argv[*i], "--socket=", 9) == 0) {
        *socket_path = argv[*i] + 9;
        return true;
    }
    return false;
}

static int
reload_command(const struct config *config, int argc, char **argv)
{
    const char *socket_path = config->control_socket_path;
    for (int i = 0; i < argc; i++) {
        if (!socket_option(argc, argv, &i, &socket_path)) {
            usage(stderr);
            return 2;
        }
    }
    return reload_request(socket_path, false);
}

/* ---- user -------------------------------------------------------------------- */

/* The terminal to restore when a signal ends a no-echo prompt. */
static struct termios tty_saved;
static volatile sig_atomic_t is_tty_changed;

static void
tty_restore_and_exit(int signo)
{
    if (is_tty_changed) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved);
    }
    (void)signo;
    _exit(130);
}

/* One line of file into out (room for the line, a CR and a NUL) without its LF
 * or CRLF. Returns 0, -ENODATA at end of file before any byte, -E2BIG for a
 * longer line, -EINVAL for a NUL byte, -errno. */
static int
line_read(FILE *file, char *out, size_t out_bytes)
{
    size_t len = 0;
    int c = EOF;
    bool is_any = false;
    /* Bounded: each turn stores a byte or ends, and the size check ends. */
    for (;;) {
        c = getc(file);
        if (c == EOF || c == '\n') {
            is_any = is_any || c == '\n';
            break;
        }
        is_any = true;
        if (c == '\0') {
            return -EINVAL;
        }
        if (len + 1 >= out_bytes) {
            return -E2BIG;
        }
        out[len++] = (char)c;
    }
    if (c == EOF && ferror(file)) {
        return -EIO;
    }
    if (!is_any) {
        return -ENODATA;
    }
    if (len > 0 && out[len - 1] == '\r') {
        len--;
    }
    out[len] = '\0';
    return 0;
}

/* Prompt on the terminal without echo. Returns line_read()'s codes. */
static int
tty_prompt(const char *prompt, char *out, size_t out_bytes)
{
    (void)fputs(prompt, stderr);
    (void)fflush(stderr);
    struct termios quiet = tty_saved;
    quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHOE | ECHOK | ECHONL);
    is_tty_changed = 1;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) {
        is_tty_changed = 0;
        return -errno;
    }
    int rc = line_read(stdin, out, out_bytes);
    (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &tty_saved); /* best effort: echo back */
    is_tty_changed = 0;
    (void)fputc('\n', stderr);
    return rc;
}

/* The new password: from password_file, else the terminal (twice), else
 * one line of stdin. Returns 0, or 1 with the reason printed. */
static int
password_get(const char *password_file, char *out, size_t out_bytes)
{
    int rc;
    if (password_file != NULL) {
        FILE *file = fopen(password_file, "re");
        if (file == NULL) {
            (void)fprintf(stderr, "toasterctl: %s: %s\n", password_file, strerror(errno));
            return 1;
        }
        rc = line_read(file, out, out_bytes);
        (void)fclose(file); /* read-only */
    } else if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &tty_saved) == 0) {
        struct sigaction action = {.sa_handler = tty_restore_and_exit};
        (void)sigaction(SIGINT, &action, NULL);
        (void)sigaction(SIGTERM, &action, NULL);
        (void)sigaction(SIGQUIT, &action, NULL);
        rc = tty_prompt("New password: ", out, out_bytes);
        if (rc == 0) {
            static char again[USERS_EDIT_PASSWORD_BYTES_MAX + 3];
            rc = tty_prompt("Retype new password: ", again, sizeof(again));
            if (rc == 0 && strcmp(out, again) != 0) {
                explicit_bzero(again, sizeof(again));
                explicit_bzero(out, out_bytes);
                (void)fprintf(stderr, "toasterctl: the passwords do not match\n");
                return 1;
            }
            explicit_bzero(again, sizeof(again));
        }
    } else {
        rc = line_read(stdin, out, out_bytes);
    }
    if (rc == 0 && out[0] == '\0') {
        rc = -ENODATA;
    }
    if (rc != 0) {
        explicit_bzero(out, out_bytes);
        (void)fprintf(stderr, "toasterctl: no password read: %s\n",
                      rc == -ENODATA  ? "it is empty"
                      : rc == -E2BIG  ? "longer than 511 bytes"
                      : rc == -EINVAL ? "it contains a NUL byte"
                                      : strerror(-rc));
        return 1;
    }
    return 0;
}

/* The name to look for in passwd and del: as users_edit matches it (lower
 * case, no trailing dot). Looser than users_edit_name_check(), so that an
 * entry added by hand that a new add would refuse can still be changed. */
static int
user_name_lookup(const char *name, char *out, size_t out_bytes)
{
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len >= out_bytes || memchr(name, '@', len) == NULL) {
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < ' ' || c == 0x7f || c == ':') {
            return -EINVAL;
        }
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    out[len] = '\0';
    return 0;
}

static void
user_list_print(void *arg, const char *name, size_t name_len)
{
    (void)arg;
    printf("%.*s\n", (int)name_len, name);
}

enum user_verb { USER_ADD, USER_PASSWD, USER_DEL, USER_LIST };

static int
user_command(const struct config *config, int argc, char **argv)
{
    if (argc < 1) {
        usage(stderr);
        return 2;
    }
    enum user_verb verb;
    if (strcmp(argv[0], "add") == 0) {
        verb = USER_ADD;
    } else if (strcmp(argv[0], "passwd") == 0) {
        verb = USER_PASSWD;
    } else if (strcmp(argv[0], "del") == 0) {
        verb = USER_DEL;
    } else if (strcmp(argv[0], "list") == 0) {
        verb = USER_LIST;
    } else {
        usage(stderr);
        return 2;
    }
    const char *socket_path = config->control_socket_path;
    const char *password_file = NULL;
    const char *user = NULL;
    enum users_edit_scheme scheme = USERS_EDIT_YESCRYPT;
    bool is_hashing = verb == USER_ADD || verb == USER_PASSWD;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (socket_option(argc, argv, &i, &socket_path)) {
            continue;
        }
        if (is_hashing && strcmp(arg, "--password-file") == 0 && i + 1 < argc) {
            password_file = argv[++i];
        } else if (is_hashing && strncmp(arg, "--password-file=", 16) == 0) {
            password_file = arg + 16;
        } else if (is_hashing &&
                   (strcmp(arg, "--scheme") == 0 || strncmp(arg, "--scheme=", 9) == 0)) {
            const char *value = arg[8] == '=' ? arg + 9 : (i + 1 < argc ? argv[++i] : "");
            if (users_edit_scheme_parse(value, &scheme) != 0) {
                (void)fprintf(stderr,
                              "toasterctl: unknown scheme '%s' (YESCRYPT, SHA512-CRYPT "
                              "or BLF-CRYPT)\n",
                              value);
                return 2;
            }
        } else if (arg[0] != '-' && user == NULL && verb != USER_LIST) {
            user = arg;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (verb != USER_LIST && user == NULL) {
        usage(stderr);
        return 2;
    }
    const char *users_path = config->users_path;
    char err[1024] = "";
    char name[USERS_EDIT_NAME_BYTES_MAX + 2];
    if (verb == USER_ADD && users_edit_name_check(user, name, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: '%s' is not a usable user name: %s\n", user, err);
        return 1;
    }
    if ((verb == USER_PASSWD || verb == USER_DEL) &&
        user_name_lookup(user, name, sizeof(name)) != 0) {
        (void)fprintf(stderr, "toasterctl: '%s' is not a user name (local@domain)\n", user);
        return 1;
    }

    /* Hash first, lock afterwards: a prompt may take as long as the
     * operator likes, and the lock must not. */
    static char hash[USERS_EDIT_HASH_BYTES_MAX + 1];
    if (is_hashing) {
        if (verb == USER_PASSWD) {
            /* Say "no such user" before asking for a password. */
            struct users_edit *probe = NULL;
            int rc = users_edit_open(users_path, &probe, err, sizeof(err));
            if (rc != 0) {
                (void)fprintf(stderr, "toasterctl: %s\n", err[0] ? err : strerror(-rc));
                return 1;
            }
            bool is_found = users_edit_has_user(probe, name);
            users_edit_close(&probe);
            if (!is_found) {
                (void)fprintf(stderr, "toasterctl: %s: no such user in %s\n", name, users_path);
                return 1;
            }
        }
        static char password[USERS_EDIT_PASSWORD_BYTES_MAX + 3];
        if (password_get(password_file, password, sizeof(password)) != 0) {
            return 1;
        }
        int rc = users_edit_hash(scheme, password, hash, sizeof(hash));
        explicit_bzero(password, sizeof(password));
        if (rc != 0) {
            (void)fprintf(stderr, "toasterctl: cannot hash the password: %s\n",
                          rc == -EINVAL ? "it has a line break or is too long" : strerror(-rc));
            return 1;
        }
    }

    struct users_edit *edit = NULL;
    int rc = users_edit_open(users_path, &edit, err, sizeof(err));
    if (rc != 0) {
        explicit_bzero(hash, sizeof(hash));
        (void)fprintf(stderr, "toasterctl: %s\n", err[0] ? err : strerror(-rc));
        return 1;
    }
    const char *done = "";
    switch (verb) {
    case USER_LIST:
        users_edit_list(edit, user_list_print, NULL);
        users_edit_close(&edit);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
            return 1;
        }
        return 0;
    case USER_ADD:
        rc = users_edit_add(edit, name, hash);
        done = "added";
        break;
    case USER_PASSWD:
        rc = users_edit_passwd(edit, name, hash);
        done = "has a new password";
        break;
    case USER_DEL:
        rc = users_edit_del(edit, name);
        done = "deleted";
        break;
    }
    explicit_bzero(hash, sizeof(hash));
    if (rc == 0) {
        rc = users_edit_commit(edit, err, sizeof(err));
        if (rc != 0) {
            (void)fprintf(stderr, "toasterctl: %s\n", err);
        }
    } else if (rc == -EEXIST) {
        (void)fprintf(stderr, "toasterctl: %s: already in %s\n", name, users_path);
    } else if (rc == -ENOENT) {
        (void)fprintf(stderr, "toasterctl: %s: no such user in %s\n", name, users_path);
    } else {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", users_path, strerror(-rc));
    }
    users_edit_close(&edit);
    if (rc != 0) {
        return 1;
    }
    printf("%s %s in %s\n", name, done, users_path);
    if (verb == USER_DEL) {
        printf("its Maildir is kept; remove it by hand when no longer wanted\n");
    }
    (void)fflush(stdout);
    return reload_request(socket_path, true);
}

/* ---- dkim -------------------------------------------------------------------- */

/* The TXT record of text as DNS zone text: character-strings of at most 255
 * bytes each (RFC 1035 3.3.14), quoted, on one line. */
static void
dkim_txt_print(const char *name, const char *text)
{
    toasterctl_dns_txt_print(stdout, name, text);
}

/* toasterctl dkim keygen DOMAIN SELECTOR [--ed25519] [--bits N] [--dir DIR]:
 * the key goes to DIR/DOMAIN.SELECTOR.pem (default DIR: <data_dir>/dkim),
 * written 0600 and never over an existing file. */
static int
dkim_command(const struct config *config, int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "keygen") != 0) {
        usage(stderr);
        return 2;
    }
    const char *domain = NULL;
    const char *selector = NULL;
    const char *dir = NULL;
    bool is_ed25519 = false;
    bool has_bits = false;
    unsigned long bits = 2048;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--ed25519") == 0) {
            is_ed25519 = true;
        } else if (strcmp(arg, "--bits") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            bits = strtoul(argv[++i], &end, 10);
            if (errno != 0 || end == argv[i] || *end != '\0' || bits < DKIM_SIGN_RSA_BITS_MIN ||
                bits > DKIM_SIGN_RSA_BITS_MAX) {
                (void)fprintf(stderr, "toasterctl: --bits must be %u to %u\n",
                              DKIM_SIGN_RSA_BITS_MIN, DKIM_SIGN_RSA_BITS_MAX);
                return 2;
            }
            has_bits = true;
        } else if (strcmp(arg, "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (arg[0] != '-' && domain == NULL) {
            domain = arg;
        } else if (arg[0] != '-' && selector == NULL) {
            selector = arg;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (domain == NULL || selector == NULL) {
        usage(stderr);
        return 2;
    }
    if (is_ed25519 && has_bits) {
        (void)fprintf(stderr, "toasterctl: --bits is for RSA keys; Ed25519 keys have one size\n");
        return 2;
    }
    char value[DKIM_KEY_PATH_BYTES_MAX + 512];
    char default_dir[DKIM_KEY_PATH_BYTES_MAX];
    if (dir == NULL) {
        int len = snprintf(default_dir, sizeof(default_dir), "%s/dkim", config->data_dir);
        if (len < 0 || (size_t)len >= sizeof(default_dir)) {
            (void)fprintf(stderr, "toasterctl: %s/dkim: path too long\n", config->data_dir);
            return 2;
        }
        dir = default_dir;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            (void)fprintf(stderr, "toasterctl: %s: %s\n", dir, strerror(errno));
            return 1;
        }
    }
    /* The configuration line needs a path that does not depend on where
     * toasterctl ran. */
    static char dir_absolute[PATH_MAX];
    if (realpath(dir, dir_absolute) == NULL) {
        (void)fprintf(stderr, "toasterctl: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    dir = dir_absolute;
    /* Check the names the way the daemon will read the configuration line. */
    int value_len = snprintf(value, sizeof(value), "%s %s %s/x", domain, selector, dir);
    static struct dkim_key key;
    char err[1024] = "path too long";
    if (value_len < 0 || (size_t)value_len >= sizeof(value) ||
        dkim_keys_parse_value(value, &key, err, sizeof(err)) != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 2;
    }
    char path[DKIM_KEY_PATH_BYTES_MAX + 1];
    int n = snprintf(path, sizeof(path), "%s/%s.%s.pem", dir, key.domain, key.selector);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        (void)fprintf(stderr, "toasterctl: %s: path too long\n", dir);
        return 2;
    }
    if (strchr(path, ' ') != NULL || strchr(path, '\t') != NULL) {
        (void)fprintf(stderr, "toasterctl: %s: a dkim_key path cannot hold blanks\n", path);
        return 2;
    }
    EVP_PKEY *pkey = NULL;
    int rc = dkim_keys_generate(is_ed25519 ? DKIM_KEY_TYPE_ED25519 : DKIM_KEY_TYPE_RSA,
                                (unsigned)bits, &pkey);
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: cannot generate the key: %s\n", strerror(-rc));
        return 1;
    }
    static char record[DKIM_KEY_RECORD_BYTES_MAX];
    int record_len = dkim_keys_record(pkey, record, sizeof(record));
    if (record_len < 0) {
        EVP_PKEY_free(pkey);
        (void)fprintf(stderr, "toasterctl: cannot write the key record: %s\n",
                      strerror(-record_len));
        return 1;
    }
    rc = dkim_keys_write_private(path, pkey, err, sizeof(err));
    EVP_PKEY_free(pkey);
    if (rc != 0) {
        (void)fprintf(stderr, "toasterctl: %s\n", err);
        return 1;
    }
    printf("; %s key written to %s (mode 0600)\n",
           is_ed25519 ? "Ed25519" : "RSA", path);
    printf("; publish this record in DNS:\n");
    char name[DKIM_SELECTOR_BYTES_MAX + DKIM_DOMAIN_BYTES_MAX + 16];
    (void)snprintf(name, sizeof(name), "%s._domainkey.%s", key.selector, key.domain);
    dkim_txt_print(name, record);
    printf("; and add this line to the configuration:\n");
    printf("dkim_key = %s %s %s\n", key.domain, key.selector, path);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "toasterctl: writing the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
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
    if (strcmp(command, "reload") == 0) {
        return reload_command(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "user") == 0) {
        return user_command(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "dkim") == 0) {
        return dkim_command(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "dns") == 0) {
        return toasterctl_dns(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "learn") == 0) {
        return toasterctl_learn(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "queue") == 0) {
        return toasterctl_queue(&config, argc - optind - 1, argv + optind + 1);
    }
    if (strcmp(command, "sieve-test") == 0) {
        return toasterctl_sieve_test(&config, argc - optind - 1, argv + optind + 1);
    }
    usage(stderr);
    return 2;
}
