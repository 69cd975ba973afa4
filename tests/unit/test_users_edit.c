/*
 * tests/unit/test_users_edit.c - editing users_file (store/users_edit.c).
 *
 * Names are checked from a table of valid, invalid and borderline cases
 * (lengths at max - 1, max, max + 1). Each edit runs on a file in a fresh
 * temporary directory and the result is compared byte for byte, so lines
 * the edit must not touch (comments, CRLF, extra fields, odd blanks) are
 * proved kept. Also covered: the hash of every scheme passes the daemon's
 * own loader (recipients_load) and check (password_verify), mode and
 * symlink kept, two edits in turn under the lock lose nothing, a change
 * made behind the lock's back is refused, and a write that fails
 * (RLIMIT_FSIZE) leaves the old file and no temporary file.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/password.h"
#include "store/recipients.h"
#include "store/users_edit.h"
#include "tests/unit/unit.h"

static char dir[64];
static char users_path[128];

static void
fresh_dir(void)
{
    char cmd[160];
    if (dir[0] != '\0') {
        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "cannot remove %s\n", dir);
        }
    }
    (void)snprintf(dir, sizeof(dir), "/tmp/test_users_edit_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    (void)snprintf(users_path, sizeof(users_path), "%s/users", dir);
}

static void
write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(content, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* The whole file, NUL-terminated, in a static buffer ("<missing>" when absent). */
static const char *
read_file(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return "<missing>";
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Entries in dir other than users and users.lock: leftover temporary files. */
static int
stray_files(void)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "users") != 0 && strcmp(e->d_name, "users.lock") != 0 &&
            strcmp(e->d_name, "target") != 0) {
            count++;
        }
    }
    (void)closedir(d);
    return count;
}

/* ---- names ------------------------------------------------------------------- */

struct name_case {
    const char *name;
    const char *canonical; /* NULL: refused */
};

static void
test_names(void)
{
    static const struct name_case cases[] = {
        {"alice@example.com", "alice@example.com"},
        {"Alice.Smith@Example.COM", "alice.smith@example.com"},
        {"a+b_c-d@sub.example-1.org", "a+b_c-d@sub.example-1.org"},
        {"j\xc3\xb6rg@m\xc3\xbcller.de", "j\xc3\xb6rg@m\xc3\xbcller.de"},
        {"x@localhost", "x@localhost"},
        {"alice", NULL},
        {"", NULL},
        {"@example.com", NULL},
        {"alice@", NULL},
        {"a@b@c", NULL},
        {".alice@example.com", NULL},
        {"#alice@example.com", NULL},
        {"alice.@example.com", NULL},
        {"al..ice@example.com", NULL},
        {"al:ice@example.com", NULL},
        {"al ice@example.com", NULL},
        {"al\tice@example.com", NULL},
        {"al\x01ice@example.com", NULL},
        {"al\x7fice@example.com", NULL},
        {"al\"ice@example.com", NULL},
        {"al/ice@example.com", NULL},
        {"alice@example.com.", NULL},
        {"alice@.example.com", NULL},
        {"alice@example..com", NULL},
        {"alice@exa mple.com", NULL},
        {"alice@exa:mple.com", NULL},
        {"alice@exa/mple.com", NULL},
        {"alice@[127.0.0.1]", NULL},
        {"al\xc3ice@example.com", NULL},     /* broken UTF-8 */
        {"al\xc0\xafice@example.com", NULL}, /* overlong '/' */
    };
    char canonical[USERS_EDIT_NAME_BYTES_MAX + 1];
    char err[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        int rc = users_edit_name_check(cases[i].name, canonical, err, sizeof(err));
        if (cases[i].canonical == NULL) {
            CHECK(rc == -EINVAL);
            CHECK(err[0] != '\0');
            if (rc != -EINVAL) {
                fprintf(stderr, "  accepted: %s\n", cases[i].name);
            }
        } else {
            CHECK(rc == 0);
            CHECK_STR(canonical, cases[i].canonical);
        }
    }

    /* Lengths: local part 64 / 65, domain 253 / 254, whole name 254 / 255. */
    char name[600];
    char local[80];
    memset(local, 'l', sizeof(local));
    (void)snprintf(name, sizeof(name), "%.64s@example.com", local);
    CHECK(users_edit_name_check(name, canonical, err, sizeof(err)) == 0);
    (void)snprintf(name, sizeof(name), "%.65s@example.com", local);
    CHECK(users_edit_name_check(name, canonical, err, sizeof(err)) == -EINVAL);
    char domain[300];
    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 */
    (void)snprintf(domain, sizeof(domain), "%.63s.%.63s.%.63s.%.61s", local, local, local, local);
    for (char *p = domain; *p != '\0'; p++) {
        if (*p == 'l') {
            *p = 'd';
        }
    }
    CHECK(strlen(domain) == 253);
    (void)snprintf(name, sizeof(name), "a@%s", domain); /* 255 bytes in all */
    CHECK(users_edit_name_check(name, canonical, err, sizeof(err)) == -EINVAL);
    domain[252] = '\0'; /* 252: name of 254 */
    (void)snprintf(name, sizeof(name), "a@%s", domain);
    CHECK(strlen(name) == USERS_EDIT_NAME_BYTES_MAX);
    CHECK(users_edit_name_check(name, canonical, err, sizeof(err)) == 0);
    (void)snprintf(name, sizeof(name), "ab@%s", domain);
    CHECK(users_edit_name_check(name, canonical, err, sizeof(err)) == -EINVAL);
}

/* ---- hashes ------------------------------------------------------------------ */

static void
test_hashes(void)
{
    enum users_edit_scheme scheme;
    CHECK(users_edit_scheme_parse("yescrypt", &scheme) == 0 && scheme == USERS_EDIT_YESCRYPT);
    CHECK(users_edit_scheme_parse("SHA512-CRYPT", &scheme) == 0 &&
          scheme == USERS_EDIT_SHA512_CRYPT);
    CHECK(users_edit_scheme_parse("blf-crypt", &scheme) == 0 && scheme == USERS_EDIT_BLF_CRYPT);
    CHECK(users_edit_scheme_parse("PLAIN", &scheme) == -EINVAL);
    CHECK(users_edit_scheme_parse("MD5-CRYPT", &scheme) == -EINVAL);

    static const struct {
        enum users_edit_scheme scheme;
        const char *prefix;
    } schemes[] = {
        {USERS_EDIT_YESCRYPT, "{CRYPT}$y$"},
        {USERS_EDIT_SHA512_CRYPT, "{SHA512-CRYPT}$6$"},
        {USERS_EDIT_BLF_CRYPT, "{BLF-CRYPT}$2y$12$"},
    };
    char hash[USERS_EDIT_HASH_BYTES_MAX + 1];
    char again[USERS_EDIT_HASH_BYTES_MAX + 1];
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        CHECK(users_edit_hash(schemes[i].scheme, "s3cret p\xc3\xa4ss", hash, sizeof(hash)) == 0);
        CHECK(strncmp(hash, schemes[i].prefix, strlen(schemes[i].prefix)) == 0);
        CHECK(strchr(hash, ':') == NULL);
        CHECK(password_verify(hash, "s3cret p\xc3\xa4ss") == 0);
        CHECK(password_verify(hash, "s3cret p\xc3\xa4sS") == -EACCES);
        /* A fresh salt each time. */
        CHECK(users_edit_hash(schemes[i].scheme, "s3cret p\xc3\xa4ss", again, sizeof(again)) == 0);
        CHECK(strcmp(hash, again) != 0);
    }
    CHECK(users_edit_hash(USERS_EDIT_YESCRYPT, "", hash, sizeof(hash)) == -EINVAL);
    CHECK(hash[0] == '\0');
    CHECK(users_edit_hash(USERS_EDIT_YESCRYPT, "two\nlines", hash, sizeof(hash)) == -EINVAL);
    CHECK(users_edit_hash(USERS_EDIT_YESCRYPT, "cr\r", hash, sizeof(hash)) == -EINVAL);
    static char long_password[USERS_EDIT_PASSWORD_BYTES_MAX + 2];
    memset(long_password, 'p', USERS_EDIT_PASSWORD_BYTES_MAX - 1);
    CHECK(users_edit_hash(USERS_EDIT_SHA512_CRYPT, long_password, hash, sizeof(hash)) == 0);
    CHECK(password_verify(hash, long_password) == 0);
    long_password[USERS_EDIT_PASSWORD_BYTES_MAX - 1] = 'p';
    CHECK(users_edit_hash(USERS_EDIT_SHA512_CRYPT, long_password, hash, sizeof(hash)) == 0);
    CHECK(password_verify(hash, long_password) == 0);
    long_password[USERS_EDIT_PASSWORD_BYTES_MAX] = 'p';
    CHECK(users_edit_hash(USERS_EDIT_SHA512_CRYPT, long_password, hash, sizeof(hash)) == -EINVAL);
    CHECK(users_edit_hash(USERS_EDIT_YESCRYPT, "x", hash, 20) == -ENOSPC);
}

/* ---- edits ------------------------------------------------------------------- */

/* Open users_path, expecting success. */
static struct users_edit *
edit_open(void)
{
    struct users_edit *edit = NULL;
    char err[256] = "";
    int rc = users_edit_open(users_path, &edit, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  users_edit_open: %s\n", err);
        exit(1);
    }
    return edit;
}

static int
edit_commit(struct users_edit *edit)
{
    char err[512] = "";
    int rc = users_edit_commit(edit, err, sizeof(err));
    if (rc != 0) {
        CHECK(err[0] != '\0');
    }
    return rc;
}

#define ORIGINAL                                                                                   \
    "# users of example.com\n"                                                                     \
    "\n"                                                                                           \
    "alice@example.com:{PLAIN}alice-secret\n"                                                      \
    "  Bob@Example.COM.:{PLAIN}old:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G \t\r\n"    \
    "   # indented comment with bob@example.com:x\n"                                               \
    "carol@example.org\n"                                                                          \
    "bob@example.com:{PLAIN}shadowed-duplicate\n"                                                  \
    "dave@example.org:{PLAIN}dave:::"

static void
test_add(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    struct users_edit *edit = edit_open();
    CHECK(users_edit_add(edit, "alice@example.com", "{PLAIN}x") == -EEXIST);
    CHECK(users_edit_add(edit, "bob@example.com", "{PLAIN}x") == -EEXIST);   /* case, dot */
    CHECK(users_edit_add(edit, "carol@example.org", "{PLAIN}x") == -EEXIST); /* no hash */
    CHECK(users_edit_add(edit, "erin@example.org", "{PLAIN}a:b") == -EINVAL);
    CHECK(users_edit_add(edit, "erin@example.org", "{PLAIN}a\nb") == -EINVAL);
    CHECK(users_edit_add(edit, "erin@example.org", "") == -EINVAL);
    CHECK(users_edit_add(edit, "erin@example.org", "{PLAIN}erin") == 0);
    CHECK(users_edit_add(edit, "erin@example.org", "{PLAIN}erin") == -EEXIST);
    CHECK(users_edit_has_user(edit, "erin@example.org"));
    CHECK(!users_edit_has_user(edit, "frank@example.org"));
    /* Nothing is written before the commit. */
    CHECK_STR(read_file(users_path), ORIGINAL);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK(edit == NULL);
    /* The last line had no newline: one is added, nothing else changes. */
    CHECK_STR(read_file(users_path), ORIGINAL "\nerin@example.org:{PLAIN}erin\n");
    CHECK(stray_files() == 0);

    /* A CRLF file gets a CRLF line. */
    write_file(users_path, "a@x.org:{PLAIN}a\r\n# c\r\n");
    edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "a@x.org:{PLAIN}a\r\n# c\r\nb@x.org:{PLAIN}b\r\n");

    /* A missing file is created with mode 0640. */
    fresh_dir();
    edit = edit_open();
    CHECK(users_edit_add(edit, "a@x.org", "{PLAIN}a") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "a@x.org:{PLAIN}a\n");
    struct stat st;
    CHECK(stat(users_path, &st) == 0 && (st.st_mode & 07777) == USERS_EDIT_NEW_FILE_MODE);
    CHECK(stray_files() == 0);

    /* An existing file keeps its mode. */
    CHECK(chmod(users_path, 0600) == 0);
    edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK(stat(users_path, &st) == 0 && (st.st_mode & 07777) == 0600);
}

static void
test_passwd(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    struct users_edit *edit = edit_open();
    CHECK(users_edit_passwd(edit, "nobody@example.com", "{PLAIN}x") == -ENOENT);
    CHECK(users_edit_passwd(edit, "bob@example.com", "{PLAIN}bad:hash") == -EINVAL);
    /* The first entry is the one in force; its extra fields, blanks, name as
     * written and CRLF stay. */
    CHECK(users_edit_passwd(edit, "bob@example.com", "{PLAIN}new") == 0);
    /* A user without a password field gets one. */
    CHECK(users_edit_passwd(edit, "carol@example.org", "{PLAIN}carol") == 0);
    /* Empty extra fields after the hash stay. */
    CHECK(users_edit_passwd(edit, "dave@example.org", "{PLAIN}dave2") == 0);
    CHECK(users_edit_passwd(edit, "alice@example.com", "{PLAIN}a") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(
        read_file(users_path),
        "# users of example.com\n"
        "\n"
        "alice@example.com:{PLAIN}a\n"
        "  Bob@Example.COM.:{PLAIN}new:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G \t\r\n"
        "   # indented comment with bob@example.com:x\n"
        "carol@example.org:{PLAIN}carol\n"
        "bob@example.com:{PLAIN}shadowed-duplicate\n"
        "dave@example.org:{PLAIN}dave2:::");
    CHECK(stray_files() == 0);
}

static void
test_del(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    struct users_edit *edit = edit_open();
    CHECK(users_edit_del(edit, "nobody@example.com") == -ENOENT);
    /* Every entry goes, or the duplicate would come into force. */
    CHECK(users_edit_del(edit, "bob@example.com") == 0);
    CHECK(users_edit_del(edit, "bob@example.com") == -ENOENT);
    CHECK(users_edit_del(edit, "dave@example.org") == 0); /* last line, no newline */
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "# users of example.com\n"
                                     "\n"
                                     "alice@example.com:{PLAIN}alice-secret\n"
                                     "   # indented comment with bob@example.com:x\n"
                                     "carol@example.org\n");
    edit = edit_open();
    CHECK(users_edit_del(edit, "alice@example.com") == 0);
    CHECK(users_edit_del(edit, "carol@example.org") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "# users of example.com\n"
                                     "\n"
                                     "   # indented comment with bob@example.com:x\n");
}

static char listed[1024];

static void
list_one(void *arg, const char *name, size_t name_len)
{
    (void)arg;
    size_t used = strlen(listed);
    (void)snprintf(listed + used, sizeof(listed) - used, "%.*s;", (int)name_len, name);
}

static void
test_list(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    struct users_edit *edit = edit_open();
    listed[0] = '\0';
    users_edit_list(edit, list_one, NULL);
    CHECK_STR(listed, "alice@example.com;Bob@Example.COM.;carol@example.org;bob@example.com;"
                      "dave@example.org;");
    users_edit_close(&edit);
    users_edit_close(&edit); /* NULL is fine */
}

/* What the daemon will do with the file: load it, find the hash, check it. */
static void
test_daemon_reads_it(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    static const enum users_edit_scheme schemes[] = {
        USERS_EDIT_YESCRYPT,
        USERS_EDIT_SHA512_CRYPT,
        USERS_EDIT_BLF_CRYPT,
    };
    static const char *const names[] = {"y@example.net", "s@example.net", "b@example.net"};
    char hash[USERS_EDIT_HASH_BYTES_MAX + 1];
    struct users_edit *edit = edit_open();
    for (size_t i = 0; i < 3; i++) {
        CHECK(users_edit_hash(schemes[i], "pw-of-new-user", hash, sizeof(hash)) == 0);
        CHECK(users_edit_add(edit, names[i], hash) == 0);
    }
    CHECK(users_edit_hash(USERS_EDIT_YESCRYPT, "bob-new", hash, sizeof(hash)) == 0);
    CHECK(users_edit_passwd(edit, "bob@example.com", hash) == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);

    struct recipients_options options = {.users_path = users_path, .myhostname = "mx.example.com"};
    struct recipients *table = NULL;
    char err[512] = "";
    int rc = recipients_load(&options, &table, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        fprintf(stderr, "  recipients_load: %s\n", err);
        return;
    }
    CHECK(recipients_user_count(table) == 7);
    for (size_t i = 0; i < 3; i++) {
        const char *stored = recipients_password_hash(table, span_make(names[i], strlen(names[i])));
        CHECK(stored != NULL);
        CHECK(stored != NULL && password_verify(stored, "pw-of-new-user") == 0);
        CHECK(stored != NULL && password_verify(stored, "pw-of-new-usex") == -EACCES);
    }
    const char *bob = recipients_password_hash(table, span_make("bob@example.com", 15));
    CHECK(bob != NULL && password_verify(bob, "bob-new") == 0);
    CHECK(bob != NULL && password_verify(bob, "old") == -EACCES);
    recipients_destroy(&table);
}

/* Two edits in turn: the second waits for the lock, then reads the first's
 * result, so neither user is lost. */
static void
test_lock(void)
{
    fresh_dir();
    write_file(users_path, "a@x.org:{PLAIN}a\n");
    int ready[2];
    CHECK(pipe(ready) == 0);
    /* Fork first: a child would share an inherited lock descriptor. */
    pid_t pid = fork();
    if (pid == 0) {
        (void)close(ready[1]);
        char go;
        if (read(ready[0], &go, 1) != 1) {
            _exit(9);
        }
        struct users_edit *second = NULL;
        char err[256];
        int rc = users_edit_open(users_path, &second, err, sizeof(err));
        if (rc != 0) {
            _exit(10);
        }
        if (users_edit_add(second, "c@x.org", "{PLAIN}c") != 0) {
            _exit(11);
        }
        if (users_edit_commit(second, err, sizeof(err)) != 0) {
            _exit(12);
        }
        users_edit_close(&second);
        _exit(0);
    }
    CHECK(pid > 0);
    (void)close(ready[0]);
    struct users_edit *first = edit_open();
    CHECK(write(ready[1], "1", 1) == 1);
    (void)close(ready[1]);
    usleep(200 * 1000); /* the child is now waiting on the lock */
    CHECK(users_edit_add(first, "b@x.org", "{PLAIN}b") == 0);
    CHECK(edit_commit(first) == 0);
    users_edit_close(&first);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_STR(read_file(users_path), "a@x.org:{PLAIN}a\nb@x.org:{PLAIN}b\nc@x.org:{PLAIN}c\n");
    CHECK(stray_files() == 0);
}

/* Someone edits the file by hand (without the lock) during our edit: the
 * commit refuses rather than throw their change away. */
static void
test_changed_meanwhile(void)
{
    fresh_dir();
    write_file(users_path, "a@x.org:{PLAIN}a\n");
    struct users_edit *edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    write_file(users_path, "a@x.org:{PLAIN}a\nhand@x.org:{PLAIN}h\n");
    CHECK(edit_commit(edit) == -EAGAIN);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "a@x.org:{PLAIN}a\nhand@x.org:{PLAIN}h\n");
    CHECK(stray_files() == 0);

    /* Replaced by another file of the same size: the inode tells. */
    edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    char other[160];
    (void)snprintf(other, sizeof(other), "%s/other", dir);
    write_file(other, "a@x.org:{PLAIN}a\nhand@x.org:{PLAIN}H\n");
    CHECK(rename(other, users_path) == 0);
    CHECK(edit_commit(edit) == -EAGAIN);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "a@x.org:{PLAIN}a\nhand@x.org:{PLAIN}H\n");

    /* Created meanwhile where there was none. */
    CHECK(unlink(users_path) == 0);
    edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    write_file(users_path, "z@x.org:{PLAIN}z\n");
    CHECK(edit_commit(edit) == -EAGAIN);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), "z@x.org:{PLAIN}z\n");
    CHECK(stray_files() == 0);
}

/* A write that fails half way (here: the file size limit) leaves the old
 * file as it was and no temporary file behind. */
static void
test_failed_write(void)
{
    fresh_dir();
    write_file(users_path, ORIGINAL);
    struct users_edit *edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    struct rlimit saved;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    struct rlimit small = {.rlim_cur = 16, .rlim_max = saved.rlim_max};
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    int rc = edit_commit(edit);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    (void)signal(SIGXFSZ, old_handler);
    CHECK(rc == -EFBIG);
    CHECK_STR(read_file(users_path), ORIGINAL);
    CHECK(stray_files() == 0);
    /* The same edit goes through once the disk takes it. */
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    CHECK_STR(read_file(users_path), ORIGINAL "\nb@x.org:{PLAIN}b\n");

    /* A directory that cannot take the temporary file. */
    fresh_dir();
    char sub[160];
    (void)snprintf(sub, sizeof(sub), "%s/no-such-dir/users", dir);
    struct users_edit *missing = NULL;
    char err[256];
    CHECK(users_edit_open(sub, &missing, err, sizeof(err)) == -ENOENT); /* lock file */
    CHECK(missing == NULL);
    CHECK(users_edit_open(dir, &missing, err, sizeof(err)) == -EISDIR);
    char dir_lock[160];
    (void)snprintf(dir_lock, sizeof(dir_lock), "%s.lock", dir);
    CHECK(unlink(dir_lock) == 0);
}

/* users_file as a symlink: the target is edited, the link stays a link. */
static void
test_symlink(void)
{
    fresh_dir();
    char target[160];
    (void)snprintf(target, sizeof(target), "%s/target", dir);
    write_file(target, "a@x.org:{PLAIN}a\n");
    CHECK(symlink("target", users_path) == 0);
    struct users_edit *edit = edit_open();
    CHECK(users_edit_add(edit, "b@x.org", "{PLAIN}b") == 0);
    CHECK(edit_commit(edit) == 0);
    users_edit_close(&edit);
    struct stat st;
    CHECK(lstat(users_path, &st) == 0 && S_ISLNK(st.st_mode));
    CHECK_STR(read_file(target), "a@x.org:{PLAIN}a\nb@x.org:{PLAIN}b\n");
    CHECK(stray_files() == 0);
}

int main(void);

int
main(void)
{
    test_names();
    test_hashes();
    test_add();
    test_passwd();
    test_del();
    test_list();
    test_daemon_reads_it();
    test_lock();
    test_changed_meanwhile();
    test_failed_write();
    test_symlink();
    char cmd[160];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", dir);
    }
    UNIT_DONE();
}
