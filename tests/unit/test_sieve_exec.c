/*
 * tests/unit/test_sieve_exec.c - Sieve at delivery (filters/sieve_exec):
 * the script chain in a temporary home (sieve_before directory in byte
 * order, the user's .dovecot.sieve, sieve_after; the next script only
 * while the implicit keep holds, stop ending one script only), broken and
 * failing user scripts falling back to keep with the script and line in
 * the error, the compiled-script cache (reused while the file is
 * unchanged, compiled again after a size or mtime change, bounded by
 * entries), address lists, include, duplicate marks and vacation claims
 * through an embedded key-value store on a clock the test moves, the
 * shipped default script, and two threads running one cached script.
 * Extensions the interpreter does not know yet are reported as skipped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/kv.h"
#include "filters/sieve_exec.h"
#include "filters/sieve_validate.h"
#include "tests/unit/unit.h"

int main(void);

static char root[256];  /* the temporary directory */
static char home[512];  /* root/home */
static char maildir[600];

static uint64_t fake_now_ms = 1000000;

static uint64_t
fake_clock(void *arg)
{
    (void)arg;
    return __atomic_load_n(&fake_now_ms, __ATOMIC_RELAXED);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

static void
path_join(char *out, size_t out_bytes, const char *a, const char *b)
{
    int n = snprintf(out, out_bytes, "%s/%s", a, b);
    CHECK(n > 0 && (size_t)n < out_bytes);
}

static void
remove_tree(const char *path)
{
    char command[1024];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", path);
    CHECK(system(command) == 0);
}

/* Whether the interpreter runs this script at all (the extension's
 * commands compile); reported as skipped otherwise. */
static bool
compiles(const char *what, const char *text)
{
    struct sieve_script *script = NULL;
    struct sieve_errors errors;
    int rc = sieve_compile(text, strlen(text), NULL, &script, &errors);
    sieve_script_free(&script);
    if (rc != 0) {
        printf("skipped: %s (the interpreter does not compile it yet: %s)\n", what,
               errors.count > 0 ? errors.items[0].text : "?");
    }
    return rc == 0;
}

static struct sieve_message
message_make(const char *text)
{
    const char *body = strstr(text, "\r\n\r\n");
    size_t header_len = body != NULL ? (size_t)(body - text) + 4 : strlen(text);
    return (struct sieve_message){
        .header = text,
        .header_len = header_len,
        .body = text + header_len,
        .body_len = strlen(text) - header_len,
        .envelope_from = "sender@example.org",
        .envelope_to = "user@example.com",
        .user = "user@example.com",
        .size_bytes = strlen(text),
        .now_unix = 1700000000,
    };
}

/* The actions as one line each ("keep", "fileinto Junk", "redirect a@b",
 * "discard"), for comparing whole results. */
static void
actions_text(const struct sieve_actions *actions, char *out, size_t out_bytes)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < actions->count; i++) {
        const struct sieve_action *a = &actions->items[i];
        const char *name = "?";
        switch (a->type) {
        case SIEVE_ACTION_KEEP:
            name = "keep";
            break;
        case SIEVE_ACTION_DISCARD:
            name = "discard";
            break;
        case SIEVE_ACTION_FILEINTO:
            name = "fileinto";
            break;
        case SIEVE_ACTION_REDIRECT:
            name = "redirect";
            break;
        case SIEVE_ACTION_REJECT:
            name = "reject";
            break;
        case SIEVE_ACTION_EREJECT:
            name = "ereject";
            break;
        case SIEVE_ACTION_VACATION:
            name = "vacation";
            break;
        }
        int n = snprintf(out + used, out_bytes - used, "%s%s%s%s", used > 0 ? "; " : "", name,
                         a->target != NULL ? " " : "", a->target != NULL ? a->target : "");
        if (n < 0 || (size_t)n >= out_bytes - used) {
            return;
        }
        used += (size_t)n;
    }
}

static int
run_text(struct sieve_exec *exec, const struct sieve_exec_user *user, const char *message_text,
         char *out, size_t out_bytes, char *err, size_t err_bytes)
{
    struct sieve_message message = message_make(message_text);
    struct sieve_actions actions;
    int rc = sieve_exec_run(exec, user, &message, &actions, err, err_bytes);
    actions_text(&actions, out, out_bytes);
    sieve_actions_free(&actions);
    return rc;
}

static struct sieve_exec *
exec_make(const char *before, const char *after, struct kv *kv)
{
    char global_dir[600];
    path_join(global_dir, sizeof(global_dir), root, "global");
    struct sieve_exec_settings settings = {
        .before = before,
        .after = after,
        .global_dir = global_dir,
        .max_script_size = 4096,
        .kv = kv,
    };
    struct sieve_exec *exec = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    int rc = sieve_exec_create(&settings, &exec, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sieve_exec_create: %s\n", err);
    }
    CHECK(rc == 0);
    return exec;
}

static void
set_user_script(const char *text)
{
    char path[700];
    path_join(path, sizeof(path), home, ".dovecot.sieve");
    (void)unlink(path);
    if (text != NULL) {
        write_file(path, text);
    }
}

static const char msg_x[] = "From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n";
static const char msg_other[] = "From: a@example.org\r\nSubject: other\r\n\r\nbody\r\n";
static const char msg_stopme[] = "From: a@example.org\r\nSubject: stopme\r\n\r\nbody\r\n";
static const char msg_halt[] = "From: a@example.org\r\nSubject: halt redir\r\n\r\nbody\r\n";
static const char msg_order[] = "From: a@example.org\r\nSubject: order\r\n\r\nbody\r\n";

static void
test_chain(void)
{
    char dir[700];
    path_join(dir, sizeof(dir), root, "before.d");
    CHECK(mkdir(dir, 0700) == 0);
    char path[800];
    path_join(path, sizeof(path), dir, "10-a.sieve");
    write_file(path, "if header :contains \"subject\" \"stopme\" { discard; }\n"
                     "if header :contains \"subject\" \"order\" { redirect \"first@example.net\"; }\n");
    path_join(path, sizeof(path), dir, "20-b.sieve");
    write_file(path, "if header :contains \"subject\" \"halt\" { stop; }\n"
                     "if header :contains \"subject\" \"redir\" { redirect \"b@example.net\"; }\n"
                     "if header :contains \"subject\" \"order\" { discard; }\n");
    path_join(path, sizeof(path), dir, "not-a-script.txt");
    write_file(path, "this is not Sieve");
    char after[700];
    path_join(after, sizeof(after), root, "after.sieve");
    write_file(after, "redirect \"after@example.net\";\n");
    set_user_script("if header :contains \"subject\" \"x\" { redirect \"user@example.net\"; }\n");

    struct sieve_exec *exec = exec_make(dir, after, NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char out[512];
    char err[SIEVE_EXEC_ERROR_BYTES];
    /* The user's redirect cancels the keep: sieve_after does not run. */
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect user@example.net");
    /* Nothing before or in the user's script: sieve_after runs. */
    CHECK(run_text(exec, &user, msg_other, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect after@example.net");
    /* discard in the first before script ends the chain. */
    CHECK(run_text(exec, &user, msg_stopme, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "discard");
    /* stop ends 20-b.sieve only; the user's script and sieve_after run. */
    CHECK(run_text(exec, &user, msg_halt, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect after@example.net");
    /* Byte order: 10-a before 20-b. */
    CHECK(run_text(exec, &user, msg_order, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect first@example.net");
    /* Without a home: global scripts only. */
    struct sieve_exec_user nobody = {.user = "user@example.com"};
    CHECK(run_text(exec, &nobody, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect after@example.net");
    /* No active script: the same. */
    set_user_script(NULL);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect after@example.net");
    sieve_exec_destroy(&exec);
    CHECK(exec == NULL);

    /* An explicit keep, like the implicit one, lets the chain go on
     * (Pigeonhole merges it into the implicit keep for the next script). */
    char keeper[700];
    path_join(keeper, sizeof(keeper), root, "keeper.sieve");
    write_file(keeper, "keep;\n");
    exec = exec_make(keeper, "", NULL);
    set_user_script("if header :contains \"subject\" \"x\" { redirect \"user@example.net\"; }\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK(strstr(out, "redirect user@example.net") != NULL);
    CHECK(run_text(exec, &user, msg_other, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "keep");
    sieve_exec_destroy(&exec);
    set_user_script(NULL);

    /* A global script that does not compile stops create, with its line. */
    path_join(path, sizeof(path), dir, "30-broken.sieve");
    write_file(path, "keep;\nif true {\n");
    struct sieve_exec_settings settings = {.before = dir, .after = ""};
    char create_err[SIEVE_EXEC_ERROR_BYTES];
    CHECK(sieve_exec_create(&settings, &exec, create_err, sizeof(create_err)) == -EINVAL);
    CHECK(exec == NULL);
    CHECK(strstr(create_err, "30-broken.sieve") != NULL);
    CHECK(strstr(create_err, "line ") != NULL);
    CHECK(unlink(path) == 0);
    /* A missing location is refused too (a typo would turn the filter off). */
    settings.before = "/nonexistent/toaster-sieve";
    CHECK(sieve_exec_create(&settings, &exec, create_err, sizeof(create_err)) == -ENOENT);
    CHECK(strstr(create_err, "sieve_before") != NULL);
    settings.before = "";
    settings.after = "builtin";
    CHECK(sieve_exec_create(&settings, &exec, create_err, sizeof(create_err)) == -EINVAL);
}

static void
test_user_errors(void)
{
    char before[700];
    path_join(before, sizeof(before), root, "before-copy.sieve");
    write_file(before, "require \"copy\";\n"
                       "if header :contains \"subject\" \"x\" { redirect :copy \"b@example.net\"; }\n");
    struct sieve_exec *exec = exec_make(before, "", NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char out[512];
    char err[SIEVE_EXEC_ERROR_BYTES];

    /* Does not compile: what sieve_before chose stays, with the keep. */
    set_user_script("require \"fileinto\";\nif true {\n  fileinto \"a\";\n");
    int rc = run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err));
    CHECK(rc < 0);
    CHECK(strstr(err, ".dovecot.sieve") != NULL);
    CHECK(strstr(err, "line ") != NULL);
    CHECK_STR(out, "redirect b@example.net; keep");

    /* Fails at run time (two redirects, one allowed): the implicit keep
     * alone, and the error names the script and the line. */
    sieve_exec_destroy(&exec);
    struct sieve_exec_settings settings = {.before = "", .after = "", .limits.redirects_max = 1};
    CHECK(sieve_exec_create(&settings, &exec, err, sizeof(err)) == 0);
    set_user_script("redirect \"one@example.net\";\n\nredirect \"two@example.net\";\n");
    rc = run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err));
    CHECK(rc < 0);
    CHECK_STR(out, "keep");
    CHECK(strstr(err, ".dovecot.sieve: line 3") != NULL);

    /* Larger than max_script_size: refused, keep. */
    sieve_exec_destroy(&exec);
    settings.max_script_size = 64;
    CHECK(sieve_exec_create(&settings, &exec, err, sizeof(err)) == 0);
    char big[200];
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "keep;", 5);
    set_user_script(big);
    rc = run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err));
    CHECK(rc == -EFBIG);
    CHECK_STR(out, "keep");
    CHECK(strstr(err, "larger than 64") != NULL);
    /* At the bound exactly: fine. */
    big[64] = '\0';
    set_user_script(big);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    big[63] = '\0';
    set_user_script(big);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_destroy(&exec);
    set_user_script(NULL);
}

static void
test_cache(void)
{
    struct sieve_exec_settings settings = {.before = "", .after = "", .cache_entries_max = 2};
    struct sieve_exec *exec = NULL;
    char err[SIEVE_EXEC_ERROR_BYTES];
    CHECK(sieve_exec_create(&settings, &exec, err, sizeof(err)) == 0);
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char out[512];
    char path[700];
    path_join(path, sizeof(path), home, ".dovecot.sieve");
    set_user_script("redirect \"v1@example.net\";\n");
    struct sieve_exec_stats stats;
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect v1@example.net");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 1);
    CHECK(stats.hit_count == 1);
    CHECK(stats.entry_count == 1);

    /* Another size: compiled again. */
    set_user_script("redirect \"v22@example.net\";\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect v22@example.net");
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 2);
    CHECK(stats.entry_count == 1); /* the old version left the cache */

    /* Same size, same inode, another mtime: compiled again. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    const char v3[] = "redirect \"v33@example.net\";\n";
    CHECK(write(fd, v3, strlen(v3)) == (ssize_t)strlen(v3));
    CHECK(close(fd) == 0);
    struct timespec times[2] = {{.tv_sec = 1000000000, .tv_nsec = 0},
                                {.tv_sec = 1000000000, .tv_nsec = 0}};
    CHECK(utimensat(AT_FDCWD, path, times, 0) == 0);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect v33@example.net");
    times[1].tv_nsec = 1; /* one nanosecond later */
    CHECK(utimensat(AT_FDCWD, path, times, 0) == 0);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 4);
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 4); /* unchanged: reused */

    /* The bound: three users' scripts in a cache of two. */
    char homes[3][700];
    for (int i = 0; i < 3; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "home%d", i);
        path_join(homes[i], sizeof(homes[i]), root, name);
        CHECK(mkdir(homes[i], 0700) == 0);
        char script[800];
        path_join(script, sizeof(script), homes[i], ".dovecot.sieve");
        write_file(script, "discard;\n");
        struct sieve_exec_user u = {.user = "u@example.com", .home = homes[i]};
        CHECK(run_text(exec, &u, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
        CHECK_STR(out, "discard");
    }
    sieve_exec_stats(exec, &stats);
    CHECK(stats.entry_count == 2);
    CHECK(stats.compile_count == 7);
    /* home2 and home1 are cached; home0 was evicted and compiles again. */
    struct sieve_exec_user u2 = {.user = "u@example.com", .home = homes[2]};
    CHECK(run_text(exec, &u2, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 7);
    struct sieve_exec_user u0 = {.user = "u@example.com", .home = homes[0]};
    CHECK(run_text(exec, &u0, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count == 8);
    CHECK(stats.entry_count == 2);

    /* Reload drops the cache. */
    CHECK(sieve_exec_reload(exec, err, sizeof(err)) == 0);
    sieve_exec_stats(exec, &stats);
    CHECK(stats.entry_count == 0);
    sieve_exec_destroy(&exec);
    set_user_script(NULL);
}

static void
test_lists(void)
{
    struct sieve_exec *exec = exec_make("", "", NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char dir[700];
    path_join(dir, sizeof(dir), home, "sieve");
    (void)mkdir(dir, 0700);
    path_join(dir, sizeof(dir), home, "sieve/lists");
    CHECK(mkdir(dir, 0700) == 0);
    char path[800];
    path_join(path, sizeof(path), dir, "friends");
    write_file(path, "# my friends\r\n"
                     "  Alice@Example.ORG  \r\n"
                     "\n"
                     "@friends.example\n"
                     "   # an indented comment\n"
                     "bob@example.net");
    const char *list = ":addrbook:friends";
    CHECK(sieve_exec_list_contains(exec, &user, list, "alice@example.org", 17) == 1);
    CHECK(sieve_exec_list_contains(exec, &user, list, "ALICE@EXAMPLE.ORG", 17) == 1);
    CHECK(sieve_exec_list_contains(exec, &user, list, "bob@example.net", 15) == 1);
    CHECK(sieve_exec_list_contains(exec, &user, list, "bob@example.netx", 16) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, list, "carol@friends.example", 21) == 1);
    CHECK(sieve_exec_list_contains(exec, &user, list, "carol@FRIENDS.example", 21) == 1);
    /* "@domain" is that domain only. */
    CHECK(sieve_exec_list_contains(exec, &user, list, "carol@sub.friends.example", 25) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, list, "friends.example", 15) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, list, "# my friends", 12) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, list, "", 0) == 0);
    /* Unknown lists and names. */
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:enemies", "a@b.c", 5) == -ENOENT);
    CHECK(sieve_exec_list_contains(exec, &user, "tag:example.com,2011:x", "a@b.c", 5) ==
          -ENOENT);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:../friends", "a@b.c", 5) == -ENOENT);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:.hidden", "a@b.c", 5) == -ENOENT);
    /* whitelist and blacklist exist even without a file: empty. */
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:whitelist", "a@b.c", 5) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:blacklist", "a@b.c", 5) == 0);
    CHECK(sieve_exec_list_contains(exec, NULL, ":addrbook:whitelist", "a@b.c", 5) == 0);
    CHECK(sieve_exec_list_contains(exec, NULL, list, "a@b.c", 5) == -ENOENT);

    /* Bounds: a line of SIEVE_EXEC_LIST_LINE_BYTES_MAX is fine, one more
     * byte is an error (never a silent cut). */
    char line[SIEVE_EXEC_LIST_LINE_BYTES_MAX + 2];
    memset(line, 'a', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    line[SIEVE_EXEC_LIST_LINE_BYTES_MAX - 12] = '@';
    char *text = malloc(2 * sizeof(line) + 8);
    CHECK(text != NULL);
    line[SIEVE_EXEC_LIST_LINE_BYTES_MAX] = '\0';
    (void)snprintf(text, 2 * sizeof(line) + 8, "%s\n", line);
    path_join(path, sizeof(path), dir, "long");
    write_file(path, text);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:long", line,
                                   SIEVE_EXEC_LIST_LINE_BYTES_MAX) == 1);
    line[SIEVE_EXEC_LIST_LINE_BYTES_MAX] = 'a';
    (void)snprintf(text, 2 * sizeof(line) + 8, "ok@example.com\r\n%s\r\n", line);
    write_file(path, text);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:long", "ok@example.com", 14) ==
          -EINVAL);
    free(text);
    /* Bytes: one over SIEVE_EXEC_LIST_BYTES_MAX is refused. */
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        for (size_t written = 0; written <= SIEVE_EXEC_LIST_BYTES_MAX; written += 16) {
            CHECK(fputs("x@example.com  \n", f) >= 0);
        }
        CHECK(fclose(f) == 0);
    }
    CHECK(truncate(path, SIEVE_EXEC_LIST_BYTES_MAX + 1) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:long", "x@example.com", 13) ==
          -EFBIG);
    CHECK(truncate(path, SIEVE_EXEC_LIST_BYTES_MAX) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, ":addrbook:long", "x@example.com", 13) == 1);

    /* Edited: read again. */
    path_join(path, sizeof(path), dir, "friends");
    write_file(path, "dave@example.org\n");
    CHECK(sieve_exec_list_contains(exec, &user, list, "alice@example.org", 17) == 0);
    CHECK(sieve_exec_list_contains(exec, &user, list, "dave@example.org", 16) == 1);
    sieve_exec_destroy(&exec);
}

static void
test_mailbox_exists(void)
{
    struct sieve_exec *exec = exec_make("", "", NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    CHECK(sieve_exec_mailbox_exists(exec, &user, "INBOX", 5) == 1);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "inbox", 5) == 1);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "Work", 4) == 1);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "Work.2024", 9) == 1);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "Wo", 2) == 0);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "Entw\xc3\xbcrfe", 9) == 1); /* &APw- */
    CHECK(sieve_exec_mailbox_exists(exec, &user, "../Work", 7) == 0);
    CHECK(sieve_exec_mailbox_exists(exec, &user, "", 0) == 0);
    /* Every user has an INBOX, known Maildir or not (Pigeonhole answers
     * the same in sieve-test); other folders need the Maildir. */
    CHECK(sieve_exec_mailbox_exists(exec, NULL, "INBOX", 5) == 1);
    CHECK(sieve_exec_mailbox_exists(exec, NULL, "Work", 4) == 0);
    sieve_exec_destroy(&exec);
}

static void
test_include(void)
{
    if (!compiles("include", "require \"include\"; include :personal \"x\";")) {
        return;
    }
    char global_dir[600];
    path_join(global_dir, sizeof(global_dir), root, "global");
    char path[800];
    path_join(path, sizeof(path), global_dir, "spam.sieve");
    write_file(path, "if header :contains \"subject\" \"x\" { redirect \"global@example.net\"; }\n");
    path_join(path, sizeof(path), home, "sieve/mine.sieve");
    write_file(path, "if header :contains \"subject\" \"other\" { redirect \"mine@example.net\"; }\n");
    path_join(path, sizeof(path), home, "sieve/broken.sieve");
    write_file(path, "if true {\n");
    struct sieve_exec *exec = exec_make("", "", NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char out[512];
    char err[SIEVE_EXEC_ERROR_BYTES];
    set_user_script("require \"include\";\n"
                    "include :personal \"mine\";\n"
                    "include :global \"spam\";\n"
                    "include :optional \"absent\";\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect global@example.net");
    CHECK(run_text(exec, &user, msg_other, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect mine@example.net");
    /* Missing without :optional: a runtime error, keep. */
    set_user_script("require \"include\";\ninclude :personal \"absent\";\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) < 0);
    CHECK_STR(out, "keep");
    /* :personal is not :global. */
    set_user_script("require \"include\";\ninclude :global \"mine\";\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) < 0);
    /* An included script that does not compile: keep, its error shown. */
    set_user_script("require \"include\";\ninclude :personal \"broken\";\n");
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) < 0);
    CHECK_STR(out, "keep");
    CHECK(strstr(err, "broken.sieve") != NULL);
    sieve_exec_destroy(&exec);
    set_user_script(NULL);
}

static void
test_builtin(void)
{
    CHECK(sieve_exec_builtin_script_bytes == strlen(sieve_exec_builtin_script));
    CHECK(strstr(sieve_exec_builtin_script, "extlists") != NULL);
    if (!compiles("the builtin default script", sieve_exec_builtin_script)) {
        return;
    }
    struct sieve_exec *exec = exec_make("builtin", "", NULL);
    if (exec == NULL) {
        return;
    }
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    char path[800];
    path_join(path, sizeof(path), home, "sieve/lists/whitelist");
    (void)unlink(path);
    path_join(path, sizeof(path), home, "sieve/lists/blacklist");
    (void)unlink(path);
    set_user_script("redirect \"user-script@example.net\";\n");
    const char spam[] = "From: Spammer <spam@spam.example>\r\nX-Spam-Flag: YES\r\n"
                        "Subject: buy\r\n\r\nbody\r\n";
    const char ham[] = "From: Friend <friend@example.org>\r\nSubject: hi\r\n\r\nbody\r\n";
    char out[512];
    char err[SIEVE_EXEC_ERROR_BYTES];
    /* No lists at all: spam to Junk, the user's script does not run. */
    CHECK(run_text(exec, &user, spam, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "fileinto Junk");
    CHECK(run_text(exec, &user, ham, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect user-script@example.net");
    /* Whitelisted by domain: the rest of the builtin script is skipped,
     * the user's script still runs. */
    path_join(path, sizeof(path), home, "sieve/lists/whitelist");
    write_file(path, "# friends\n@spam.example\n");
    CHECK(run_text(exec, &user, spam, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect user-script@example.net");
    /* Blacklisted: discarded, the user's script does not run. */
    CHECK(unlink(path) == 0);
    path_join(path, sizeof(path), home, "sieve/lists/blacklist");
    write_file(path, "FRIEND@example.org\n");
    CHECK(run_text(exec, &user, ham, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "discard");
    CHECK(unlink(path) == 0);
    sieve_exec_destroy(&exec);
    set_user_script(NULL);
}

static void
test_duplicate_and_vacation(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(1024, fake_clock, NULL, &kv) == 0);
    struct sieve_exec *exec = exec_make("", "", kv);
    if (exec == NULL) {
        kv_destroy(&kv);
        return;
    }
    /* Marks recorded at commit, under "sieve-dup:", for their period. */
    struct sieve_actions actions;
    sieve_actions_init(&actions);
    actions.duplicate_count = 1;
    memset(actions.duplicates[0].key, 'a', SIEVE_RUN_DUPLICATE_KEY_BYTES - 1);
    actions.duplicates[0].key[SIEVE_RUN_DUPLICATE_KEY_BYTES - 1] = '\0';
    actions.duplicates[0].period_seconds = 60;
    sieve_exec_commit(exec, &actions);
    sieve_actions_free(&actions);
    /* The store keeps 64-byte keys: the prefix and the digest's start. */
    char key[KV_KEY_BYTES_MAX];
    memcpy(key, "sieve-dup:", 10);
    memset(key + 10, 'a', KV_KEY_BYTES_MAX - 10);
    char value[KV_VALUE_BYTES_MAX];
    size_t value_len = 0;
    CHECK(kv_get(kv, key, KV_KEY_BYTES_MAX, value, sizeof(value), &value_len) == 0);
    __atomic_add_fetch(&fake_now_ms, 61000, __ATOMIC_RELAXED);
    CHECK(kv_get(kv, key, KV_KEY_BYTES_MAX, value, sizeof(value), &value_len) == -ENOENT);

    /* Through a script: not seen on the first run, seen on the second. */
    if (compiles("duplicate", "require \"duplicate\"; if duplicate { discard; }")) {
        struct sieve_exec_user user = {.user = "user@example.com", .home = home};
        set_user_script("require \"duplicate\";\nif duplicate { discard; }\n");
        const char text[] = "From: a@example.org\r\nMessage-ID: <1@example.org>\r\n\r\nx\r\n";
        struct sieve_message message = message_make(text);
        char err[SIEVE_EXEC_ERROR_BYTES];
        char out[512];
        CHECK(sieve_exec_run(exec, &user, &message, &actions, err, sizeof(err)) == 0);
        actions_text(&actions, out, sizeof(out));
        CHECK_STR(out, "keep");
        CHECK(actions.duplicate_count == 1);
        sieve_exec_commit(exec, &actions);
        sieve_actions_free(&actions);
        CHECK(sieve_exec_run(exec, &user, &message, &actions, err, sizeof(err)) == 0);
        actions_text(&actions, out, sizeof(out));
        CHECK_STR(out, "discard");
        sieve_actions_free(&actions);
        set_user_script(NULL);
    }

    /* Vacation: once per user, sender and handle per period. */
    struct sieve_vacation vacation = {.handle = "h1", .period_seconds = 86400};
    CHECK(sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
    CHECK(!sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
    CHECK(sieve_exec_vacation_claim(exec, "user@example.com", "t@example.org", &vacation));
    CHECK(sieve_exec_vacation_claim(exec, "other@example.com", "s@example.org", &vacation));
    struct sieve_vacation vacation2 = {.handle = "h2", .period_seconds = 86400};
    CHECK(sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation2));
    __atomic_add_fetch(&fake_now_ms, 86399000, __ATOMIC_RELAXED);
    CHECK(!sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
    __atomic_add_fetch(&fake_now_ms, 2000, __ATOMIC_RELAXED);
    CHECK(sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
    CHECK(!sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
    /* No sender (a bounce): never. */
    CHECK(!sieve_exec_vacation_claim(exec, "user@example.com", "", &vacation));

    /* The redirect loop guard: once per user, Message-ID and target per
     * period (12 h by default). */
    const char id[] = "<loop@example.org>";
    const size_t id_len = sizeof(id) - 1;
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", id, id_len, "far@example.net"));
    CHECK(!sieve_exec_redirect_claim(exec, "user@example.com", id, id_len, "far@example.net"));
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", id, id_len, "else@example.net"));
    CHECK(sieve_exec_redirect_claim(exec, "other@example.com", id, id_len, "far@example.net"));
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", id, id_len - 1, "far@example.net"));
    /* No Message-ID, or one past the bound: it cannot tell, so it goes. */
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", NULL, 0, "far@example.net"));
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", NULL, 0, "far@example.net"));
    static char long_id[SIEVE_EXEC_REDIRECT_ID_BYTES_MAX + 1];
    memset(long_id, 'x', sizeof(long_id));
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", long_id, sizeof(long_id), "f@x"));
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", long_id, sizeof(long_id), "f@x"));
    /* At the bound it is looked at: recorded once. */
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", long_id, sizeof(long_id) - 1, "f@x"));
    CHECK(!sieve_exec_redirect_claim(exec, "user@example.com", long_id, sizeof(long_id) - 1,
                                     "f@x"));
    __atomic_add_fetch(&fake_now_ms, 12u * 3600u * 1000u - 1000u, __ATOMIC_RELAXED);
    CHECK(!sieve_exec_redirect_claim(exec, "user@example.com", id, id_len, "far@example.net"));
    __atomic_add_fetch(&fake_now_ms, 2000u, __ATOMIC_RELAXED);
    CHECK(sieve_exec_redirect_claim(exec, "user@example.com", id, id_len, "far@example.net"));
    sieve_exec_destroy(&exec);
    kv_destroy(&kv);

    /* Without a store: a private one, still once. */
    exec = exec_make("", "", NULL);
    if (exec != NULL) {
        CHECK(sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
        CHECK(!sieve_exec_vacation_claim(exec, "user@example.com", "s@example.org", &vacation));
        sieve_exec_destroy(&exec);
    }
}

struct thread_arg {
    struct sieve_exec *exec;
    const struct sieve_exec_user *user;
    int failures;
};

static void *
thread_main(void *arg)
{
    struct thread_arg *t = arg;
    for (int i = 0; i < 2000; i++) {
        char out[512];
        char err[SIEVE_EXEC_ERROR_BYTES];
        const char *text = (i & 1) != 0 ? msg_x : msg_other;
        int rc = run_text(t->exec, t->user, text, out, sizeof(out), err, sizeof(err));
        const char *want = (i & 1) != 0 ? "redirect x@example.net" : "keep";
        if (rc != 0 || strcmp(out, want) != 0) {
            t->failures++;
        }
    }
    return NULL;
}

static void
test_threads(void)
{
    struct sieve_exec *exec = exec_make("", "", NULL);
    if (exec == NULL) {
        return;
    }
    set_user_script("if header :is \"subject\" \"x\" { redirect \"x@example.net\"; }\n");
    struct sieve_exec_user user = {.user = "user@example.com", .home = home, .maildir = maildir};
    struct thread_arg args[2] = {{exec, &user, 0}, {exec, &user, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(args[i].failures == 0);
    }
    struct sieve_exec_stats stats;
    sieve_exec_stats(exec, &stats);
    CHECK(stats.compile_count >= 1 && stats.compile_count <= 2); /* a first-use race at most */
    CHECK(stats.entry_count == 1);
    sieve_exec_destroy(&exec);

    /* Reloads (global scripts compiled again, the cache dropped) while
     * two threads run: no run loses a script it holds. */
    char global[700];
    path_join(global, sizeof(global), root, "reload.sieve");
    write_file(global, "if header :is \"subject\" \"nothing\" { discard; }\n");
    exec = exec_make(global, "", NULL);
    if (exec == NULL) {
        return;
    }
    args[0] = (struct thread_arg){exec, &user, 0};
    args[1] = (struct thread_arg){exec, &user, 0};
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0);
    }
    char err[SIEVE_EXEC_ERROR_BYTES];
    for (int i = 0; i < 200; i++) {
        CHECK(sieve_exec_reload(exec, err, sizeof(err)) == 0);
    }
    for (int i = 0; i < 2; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(args[i].failures == 0);
    }
    /* A reload whose global script broke keeps the old ones. */
    write_file(global, "if true {\n");
    CHECK(sieve_exec_reload(exec, err, sizeof(err)) == -EINVAL);
    CHECK(strstr(err, "reload.sieve") != NULL);
    char out[512];
    CHECK(run_text(exec, &user, msg_x, out, sizeof(out), err, sizeof(err)) == 0);
    CHECK_STR(out, "redirect x@example.net");
    sieve_exec_destroy(&exec);
    set_user_script(NULL);
}

static void
setup(void)
{
    (void)snprintf(root, sizeof(root), "/tmp/test_sieve_exec.XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    path_join(home, sizeof(home), root, "home");
    CHECK(mkdir(home, 0700) == 0);
    path_join(maildir, sizeof(maildir), home, "Maildir");
    CHECK(mkdir(maildir, 0700) == 0);
    const char *dirs[] = {"cur", "new", "tmp", ".Work", ".Work.2024", ".Entw&APw-rfe"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[800];
        path_join(path, sizeof(path), maildir, dirs[i]);
        CHECK(mkdir(path, 0700) == 0);
    }
    char path[800];
    path_join(path, sizeof(path), home, "sieve");
    CHECK(mkdir(path, 0700) == 0);
    path_join(path, sizeof(path), root, "global");
    CHECK(mkdir(path, 0700) == 0);
}

int
main(void)
{
    setup();
    test_chain();
    test_user_errors();
    test_cache();
    test_lists();
    test_mailbox_exists();
    test_include();
    test_builtin();
    test_duplicate_and_vacation();
    test_threads();
    remove_tree(root);
    UNIT_DONE();
}
