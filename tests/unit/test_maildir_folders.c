/*
 * tests/unit/test_maildir_folders.c - Maildir++ folders: the name rules
 * (a table of valid, invalid and limit cases), paths, special use, and
 * create / list / delete / rename / ensure_defaults on real directories
 * under a mkdtemp() root, including INBOX rename, children, leftovers from
 * Dovecot, a symlink that delete must not follow, and the folder limits at
 * max - 1, max and max + 1. The root is removed at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/maildir_folders.h"
#include "tests/unit/unit.h"

static char base[64];

static void
path_join(char *out, size_t out_bytes, const char *a, const char *b)
{
    int n = snprintf(out, out_bytes, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= out_bytes) {
        fprintf(stderr, "path too long: %s/%s\n", a, b);
        exit(2);
    }
}

static void
make_dir(const char *dir, const char *name)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    if (mkdir(p, 0700) != 0) {
        perror(p);
        exit(2);
    }
}

static void
write_file(const char *dir, const char *name, const char *data)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(data);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
        perror(p);
        exit(2);
    }
}

static size_t
read_file(const char *dir, const char *name, char *buf, size_t buf_bytes)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        buf[0] = '\0';
        return 0;
    }
    ssize_t n = read(fd, buf, buf_bytes - 1);
    (void)close(fd);
    if (n < 0) {
        n = 0;
    }
    buf[n] = '\0';
    return (size_t)n;
}

/* lstat: a symlink counts as existing, and is not followed. */
static bool
exists(const char *dir, const char *name)
{
    char p[1024];
    path_join(p, sizeof(p), dir, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void
make_maildir(const char *root)
{
    if (mkdir(root, 0700) != 0) {
        perror(root);
        exit(2);
    }
    make_dir(root, "cur");
    make_dir(root, "new");
    make_dir(root, "tmp");
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void
rm_tree(const char *p)
{
    (void)nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh Maildir root <base>/<name>. */
static void
new_root(char *out, size_t out_bytes, const char *name)
{
    path_join(out, out_bytes, base, name);
    make_maildir(out);
}

/* Whether any entry of dir starts with prefix. */
static bool
has_entry_prefix(const char *dir, const char *prefix)
{
    char cmd_dir[1024];
    snprintf(cmd_dir, sizeof(cmd_dir), "%s", dir);
    DIR *d = opendir(cmd_dir);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            found = true;
        }
    }
    (void)closedir(d);
    return found;
}

static const struct maildir_folder *
find_folder(const struct maildir_folder_list *list, const char *name)
{
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->folders[i].name, name) == 0) {
            return &list->folders[i];
        }
    }
    return NULL;
}

/* ---- names ---- */

struct name_case {
    const char *name;
    size_t len; /* 0: strlen */
    int want;
};

static void
test_name_check(void)
{
    static const struct name_case cases[] = {
        /* valid */
        {"Sent", 0, 0},
        {"INBOX", 0, 0},
        {"inbox", 0, 0},
        {"INBOX.foo", 0, 0},
        {"a.b.c", 0, 0},
        {"a b", 0, 0},
        {"x-y", 0, 0},
        {"[Gmail].Sent Mail", 0, 0},
        {"a.~b", 0, 0},  /* only a leading '~' is refused */
        {"&Jjo-", 0, 0}, /* U+263A */
        {"&-", 0, 0},    /* '&' */
        {"a&-b", 0, 0},
        {"Tr&AOQ-ume", 0, 0},   /* Träume */
        {"&AOQ-&-&AOQ-", 0, 0}, /* shift, '&', shift */
        {"&2D3eAQ-", 0, 0},     /* U+1F601: a surrogate pair */
        {"&AOQ-.&AOQ-", 0, 0},  /* a shift in each level */
        /* invalid */
        {"", 0, -EINVAL},
        {".", 0, -EINVAL},
        {"..", 0, -EINVAL},
        {"../x", 0, -EINVAL},
        {"a/b", 0, -EINVAL},
        {"/etc", 0, -EINVAL},
        {".hidden", 0, -EINVAL},
        {"a..b", 0, -EINVAL},
        {"a.", 0, -EINVAL},
        {"~x", 0, -EINVAL},
        {"~", 0, -EINVAL},
        {"a\tb", 0, -EINVAL},
        {"a\nb", 0, -EINVAL},
        {"a\x7f", 0, -EINVAL},
        {"caf\xc3\xa9", 0, -EINVAL}, /* 8-bit: storage names are mUTF-7 */
        {"\xff", 0, -EINVAL},
        {"a\0b", 3, -EINVAL},
        {"&Jjo", 0, -EINVAL}, /* unterminated */
        {"&", 0, -EINVAL},
        {"a&", 0, -EINVAL},
        {"&Jj o-", 0, -EINVAL},     /* not base64 */
        {"&Jjo.-", 0, -EINVAL},     /* '.' inside a shift */
        {"&AGE-", 0, -EINVAL},      /* 'a' must be direct */
        {"&AAA-", 0, -EINVAL},      /* U+0000 */
        {"&AIA-", 0, -EINVAL},      /* U+0080, a C1 control */
        {"&AOR-", 0, -EINVAL},      /* non-zero padding bits */
        {"&AOQA-", 0, -EINVAL},     /* a whole extra digit of padding */
        {"&AOQ-&AOQ-", 0, -EINVAL}, /* two adjacent shifts */
        {"&2D0-", 0, -EINVAL},      /* lone high surrogate */
        {"&3gE-", 0, -EINVAL},      /* lone low surrogate */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct name_case *c = &cases[i];
        size_t len = c->len != 0 ? c->len : strlen(c->name);
        int rc = maildir_folders_name_check(c->name, len);
        if (rc != c->want) {
            fprintf(stderr, "name %zu \"%s\": got %d want %d\n", i, c->name, rc, c->want);
        }
        CHECK(rc == c->want);
    }

    /* Length: ".name" must fit NAME_MAX (255), so 254 bytes. */
    char name[400];
    memset(name, 'a', sizeof(name));
    CHECK(maildir_folders_name_check(name, MAILDIR_FOLDERS_NAME_BYTES_MAX - 1) == 0);
    CHECK(maildir_folders_name_check(name, MAILDIR_FOLDERS_NAME_BYTES_MAX) == 0);
    CHECK(maildir_folders_name_check(name, 254) == 0);
    CHECK(maildir_folders_name_check(name, 255) == -ENAMETOOLONG);
    CHECK(maildir_folders_name_check(name, 256) == -ENAMETOOLONG);

    /* Depth: "a.a...." with n levels. */
    for (size_t levels = MAILDIR_FOLDERS_DEPTH_MAX - 1; levels <= MAILDIR_FOLDERS_DEPTH_MAX + 1;
         levels++) {
        size_t len = 0;
        for (size_t k = 0; k < levels; k++) {
            if (k > 0) {
                name[len++] = '.';
            }
            name[len++] = 'a';
        }
        int want = levels <= MAILDIR_FOLDERS_DEPTH_MAX ? 0 : -ENAMETOOLONG;
        CHECK(maildir_folders_name_check(name, len) == want);
    }

    CHECK(maildir_folders_is_inbox("INBOX", 5));
    CHECK(maildir_folders_is_inbox("iNbOx", 5));
    CHECK(!maildir_folders_is_inbox("INBOX.x", 7));
    CHECK(!maildir_folders_is_inbox("INBO", 4));
}

static void
test_path(void)
{
    char out[64];
    CHECK(maildir_folders_path("/r/Maildir", "INBOX", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir");
    CHECK(maildir_folders_path("/r/Maildir", "inbox", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir");
    CHECK(maildir_folders_path("/r/Maildir", "Sent", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir/.Sent");
    CHECK(maildir_folders_path("/r/Maildir", "Archive.2024", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir/.Archive.2024");
    CHECK(maildir_folders_path("/r/Maildir", "inbox.x", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir/.INBOX.x");
    CHECK(maildir_folders_path("/r/Maildir", "Inbox2", out, sizeof(out)) == 0);
    CHECK_STR(out, "/r/Maildir/.Inbox2");
    CHECK(maildir_folders_path("/r/Maildir", "../x", out, sizeof(out)) == -EINVAL);
    CHECK(maildir_folders_path("/r/Maildir", "a/b", out, sizeof(out)) == -EINVAL);
    /* "/r/Maildir/.Sent" is 16 bytes: 17 fit, 16 do not. */
    CHECK(maildir_folders_path("/r/Maildir", "Sent", out, 17) == 0);
    CHECK(maildir_folders_path("/r/Maildir", "Sent", out, 16) == -ENAMETOOLONG);
    CHECK(out[0] == '\0');
}

static void
test_special_use(void)
{
    static const struct {
        const char *name;
        const char *want;
    } cases[] = {
        {"Sent", "\\Sent"},   {"Drafts", "\\Drafts"},   {"Junk", "\\Junk"},
        {"Trash", "\\Trash"}, {"Archive", "\\Archive"}, {"sent", NULL},
        {"SENT", NULL},       {"Archive.2024", NULL},   {"INBOX.Sent", NULL},
        {"Sent.x", NULL},     {"INBOX", NULL},          {"Spam", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = maildir_folders_special_use(cases[i].name);
        if (cases[i].want == NULL) {
            CHECK(got == NULL);
        } else {
            CHECK(got != NULL && strcmp(got, cases[i].want) == 0);
        }
    }
}

/* ---- create and list ---- */

static void
test_create_list(void)
{
    char root[256];
    new_root(root, sizeof(root), "create");

    struct maildir_folder_list list;
    CHECK(maildir_folders_list(root, 0, &list) == 0);
    CHECK(list.count == 1);
    if (list.count == 1) {
        CHECK_STR(list.folders[0].name, "INBOX");
        CHECK(list.folders[0].is_inbox);
        CHECK(list.folders[0].is_selectable);
        CHECK(!list.folders[0].has_children);
    }
    maildir_folders_list_free(&list);
    CHECK(list.folders == NULL && list.count == 0);

    static const char *const made[] = {"Sent", "a.b", "Archive", "Archive.2024",
                                       "x",    "x-y", "x.z",     "Tr&AOQ-ume"};
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
        CHECK(maildir_folders_create(root, made[i], 0) == 0);
    }
    CHECK(exists(root, ".Sent/cur"));
    CHECK(exists(root, ".Sent/new"));
    CHECK(exists(root, ".Sent/tmp"));
    CHECK(exists(root, ".Sent/maildirfolder"));
    CHECK(exists(root, ".a.b/cur"));
    CHECK(!exists(root, ".a")); /* no parents in Maildir++ */
    CHECK(!has_entry_prefix(root, "..toaster-create"));

    CHECK(maildir_folders_create(root, "Sent", 0) == -EEXIST);
    CHECK(maildir_folders_create(root, "INBOX", 0) == -EEXIST);
    CHECK(maildir_folders_create(root, "inbox", 0) == -EEXIST);
    CHECK(maildir_folders_create(root, "../x", 0) == -EINVAL);
    CHECK(maildir_folders_create(root, "a..b", 0) == -EINVAL);
    CHECK(maildir_folders_create(root, "&Jjo", 0) == -EINVAL);
    CHECK(!exists(base, "x"));
    CHECK(maildir_folders_create(root, "inbox.q", 0) == 0);
    CHECK(exists(root, ".INBOX.q/cur"));
    CHECK(maildir_folders_create(root, "INBOX.q", 0) == -EEXIST);

    /* Things that are no folders. */
    make_dir(root, ".nocur");       /* listed, not selectable */
    write_file(root, ".file", "x"); /* not a directory */
    make_dir(base, "outside");
    char target[512];
    path_join(target, sizeof(target), base, "outside");
    char link[512];
    path_join(link, sizeof(link), root, ".link");
    CHECK(symlink(target, link) == 0); /* symlinks are never folders */
    make_dir(root, "..DOVECOT-TRASH");
    make_dir(root, ".a..b");
    make_dir(root, ".inbox.low");
    make_dir(root, ".INBOX");
    make_dir(root, ".caf\xc3\xa9");
    make_dir(root, "plain");
    CHECK(maildir_folders_create(root, "INBOXfoo", 0) == 0); /* no child of INBOX */
    write_file(root, "dovecot-uidlist", "3 V1 N1\n");
    CHECK(maildir_folders_create(root, "file", 0) == -EEXIST); /* the entry exists */

    CHECK(maildir_folders_list(root, 0, &list) == 0);
    static const char *const want[] = {
        "INBOX", "Archive", "Archive.2024", "INBOX.q", "INBOXfoo", "Sent", "Tr&AOQ-ume",
        "a",     "a.b",     "nocur",        "x",       "x-y",      "x.z",
    };
    CHECK(list.count == sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < list.count && i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK_STR(list.folders[i].name, want[i]);
        CHECK(list.folders[i].name_len == strlen(want[i]));
        CHECK(list.folders[i].is_inbox == (i == 0));
    }
    const struct maildir_folder *f;
    f = find_folder(&list, "INBOX");
    CHECK(f != NULL && f->has_children && f->is_selectable && f->special_use == NULL);
    f = find_folder(&list, "Archive");
    CHECK(f != NULL && f->has_children && f->is_selectable && !f->is_nonexistent);
    CHECK(f != NULL && f->special_use != NULL && strcmp(f->special_use, "\\Archive") == 0);
    f = find_folder(&list, "Archive.2024");
    CHECK(f != NULL && !f->has_children && f->special_use == NULL);
    f = find_folder(&list, "Sent");
    CHECK(f != NULL && f->special_use != NULL && strcmp(f->special_use, "\\Sent") == 0);
    CHECK(f != NULL && !f->has_children);
    f = find_folder(&list, "a");
    CHECK(f != NULL && f->is_nonexistent && f->has_children && !f->is_selectable);
    f = find_folder(&list, "a.b");
    CHECK(f != NULL && !f->is_nonexistent && !f->has_children && f->is_selectable);
    f = find_folder(&list, "nocur");
    CHECK(f != NULL && !f->is_selectable && !f->is_nonexistent);
    f = find_folder(&list, "x");
    CHECK(f != NULL && f->has_children); /* "x-y" sorts between "x" and "x.z" */
    f = find_folder(&list, "x-y");
    CHECK(f != NULL && !f->has_children);
    maildir_folders_list_free(&list);

    /* Deep missing parents: one entry each, shared by siblings. */
    CHECK(maildir_folders_create(root, "p.q.r", 0) == 0);
    CHECK(maildir_folders_create(root, "p.q.s", 0) == 0);
    CHECK(maildir_folders_list(root, 0, &list) == 0);
    size_t p_count = 0;
    size_t pq_count = 0;
    for (size_t i = 0; i < list.count; i++) {
        p_count += strcmp(list.folders[i].name, "p") == 0;
        pq_count += strcmp(list.folders[i].name, "p.q") == 0;
    }
    CHECK(p_count == 1);
    CHECK(pq_count == 1);
    f = find_folder(&list, "p.q");
    CHECK(f != NULL && f->is_nonexistent && f->has_children);
    maildir_folders_list_free(&list);

    char missing_root[256];
    path_join(missing_root, sizeof(missing_root), base, "nosuchroot");
    CHECK(maildir_folders_list(missing_root, 0, &list) == -ENOENT);
    CHECK(list.count == 0 && list.folders == NULL);
    CHECK(maildir_folders_create(missing_root, "Sent", 0) == -ENOENT);
    maildir_folders_list_free(&list); /* safe after an error */
}

static void
test_limits(void)
{
    char root[256];
    new_root(root, sizeof(root), "limits");
    struct maildir_folder_list list;

    /* folders_max 3: the third create is at max - 1 folders, the fourth
     * at max. */
    CHECK(maildir_folders_create(root, "f1", 3) == 0);
    CHECK(maildir_folders_create(root, "f2", 3) == 0);
    CHECK(maildir_folders_create(root, "f3", 3) == 0);
    CHECK(maildir_folders_create(root, "f4", 3) == -EDQUOT);
    CHECK(!exists(root, ".f4"));
    CHECK(maildir_folders_create(root, "f4", 4) == 0);
    /* 4 folders: list with max 5, 4 works, 3 does not. */
    CHECK(maildir_folders_list(root, 5, &list) == 0);
    CHECK(list.count == 5);
    maildir_folders_list_free(&list);
    CHECK(maildir_folders_list(root, 4, &list) == 0);
    CHECK(list.count == 5);
    maildir_folders_list_free(&list);
    CHECK(maildir_folders_list(root, 3, &list) == -E2BIG);
    CHECK(list.count == 0 && list.folders == NULL);
    maildir_folders_list_free(&list);
    /* 0 means the default, which is far away. */
    CHECK(maildir_folders_list(root, 0, &list) == 0);
    maildir_folders_list_free(&list);

    /* Missing parents are bounded too: 2 folders, 3 parents. */
    char root2[256];
    new_root(root2, sizeof(root2), "limits2");
    CHECK(maildir_folders_create(root2, "q.r.s", 0) == 0);
    CHECK(maildir_folders_create(root2, "t.u", 0) == 0);
    CHECK(maildir_folders_list(root2, 3, &list) == 0);
    CHECK(list.count == 6);
    maildir_folders_list_free(&list);
    CHECK(maildir_folders_list(root2, 2, &list) == -E2BIG);
    maildir_folders_list_free(&list);

    /* A 254-byte name is a 255-byte entry: the most NAME_MAX allows. */
    char name[300];
    memset(name, 'n', sizeof(name));
    name[MAILDIR_FOLDERS_NAME_BYTES_MAX] = '\0';
    CHECK(maildir_folders_create(root2, name, 0) == 0);
    CHECK(maildir_folders_list(root2, 0, &list) == 0);
    CHECK(find_folder(&list, name) != NULL);
    maildir_folders_list_free(&list);
    name[MAILDIR_FOLDERS_NAME_BYTES_MAX] = 'n';
    name[MAILDIR_FOLDERS_NAME_BYTES_MAX + 1] = '\0';
    CHECK(maildir_folders_create(root2, name, 0) == -ENAMETOOLONG);
}

/* ---- delete ---- */

static void
test_delete(void)
{
    char root[256];
    new_root(root, sizeof(root), "delete");
    char dir[512];

    CHECK(maildir_folders_create(root, "D", 0) == 0);
    path_join(dir, sizeof(dir), root, ".D/cur");
    write_file(dir, "1.M1.host,S=3:2,S", "abc");
    write_file(root, ".D/dovecot-uidlist", "3 V1 N2\n1 :1.M1.host,S=3\n");
    CHECK(maildir_folders_delete(root, "D") == 0);
    CHECK(!exists(root, ".D"));
    CHECK(!exists(root, MAILDIR_FOLDERS_TRASH_NAME));

    CHECK(maildir_folders_delete(root, "D") == -ENOENT);
    CHECK(maildir_folders_delete(root, "INBOX") == -EPERM);
    CHECK(maildir_folders_delete(root, "inbox") == -EPERM);
    CHECK(maildir_folders_delete(root, "../delete") == -EINVAL);
    write_file(root, ".plainfile", "x");
    CHECK(maildir_folders_delete(root, "plainfile") == -ENOENT);
    CHECK(exists(root, ".plainfile"));

    /* Children: the parent stays until they are gone. */
    CHECK(maildir_folders_create(root, "P", 0) == 0);
    CHECK(maildir_folders_create(root, "P.c", 0) == 0);
    CHECK(maildir_folders_create(root, "P-x", 0) == 0); /* not a child */
    CHECK(maildir_folders_delete(root, "P") == -ENOTEMPTY);
    CHECK(exists(root, ".P/cur"));
    CHECK(maildir_folders_delete(root, "P.c") == 0);
    CHECK(maildir_folders_delete(root, "P") == 0);
    CHECK(!exists(root, ".P"));
    CHECK(exists(root, ".P-x/cur"));
    /* A child whose parent never existed. */
    CHECK(maildir_folders_create(root, "m.n", 0) == 0);
    CHECK(maildir_folders_delete(root, "m") == -ENOENT);
    CHECK(maildir_folders_delete(root, "m.n") == 0);
    /* inbox.x is INBOX.x. */
    CHECK(maildir_folders_create(root, "INBOX.k", 0) == 0);
    CHECK(maildir_folders_delete(root, "inbox.k") == 0);
    CHECK(!exists(root, ".INBOX.k"));

    /* A trash left by a crash is removed first. */
    make_dir(root, MAILDIR_FOLDERS_TRASH_NAME);
    path_join(dir, sizeof(dir), root, MAILDIR_FOLDERS_TRASH_NAME);
    make_dir(dir, "cur");
    write_file(dir, "cur/old", "x");
    CHECK(maildir_folders_create(root, "E", 0) == 0);
    CHECK(maildir_folders_delete(root, "E") == 0);
    CHECK(!exists(root, ".E"));
    CHECK(!exists(root, MAILDIR_FOLDERS_TRASH_NAME));

    /* Symlinks inside are unlinked, never followed. */
    char outside[512];
    path_join(outside, sizeof(outside), base, "keep");
    make_dir(base, "keep");
    make_dir(outside, "sub");
    write_file(outside, "precious", "1");
    write_file(outside, "sub/precious2", "2");
    CHECK(maildir_folders_create(root, "S", 0) == 0);
    char link[600];
    path_join(link, sizeof(link), root, ".S/cur/link-to-dir");
    CHECK(symlink(outside, link) == 0);
    path_join(link, sizeof(link), root, ".S/linked");
    CHECK(symlink(outside, link) == 0);
    path_join(link, sizeof(link), root, ".S/new/link-to-file");
    char file[600];
    path_join(file, sizeof(file), outside, "precious");
    CHECK(symlink(file, link) == 0);
    CHECK(maildir_folders_delete(root, "S") == 0);
    CHECK(!exists(root, ".S"));
    CHECK(exists(outside, "precious"));
    CHECK(exists(outside, "sub/precious2"));

    /* A folder that is itself a symlink is no folder: not deleted, and
     * what it points to is untouched. */
    path_join(link, sizeof(link), root, ".L");
    CHECK(symlink(outside, link) == 0);
    CHECK(maildir_folders_delete(root, "L") == -ENOENT);
    CHECK(exists(outside, "precious"));
}

/* ---- rename ---- */

static void
test_rename(void)
{
    char root[256];
    new_root(root, sizeof(root), "rename");
    char dir[512];
    char buf[256];

    CHECK(maildir_folders_create(root, "R", 0) == 0);
    CHECK(maildir_folders_create(root, "R.c1", 0) == 0);
    CHECK(maildir_folders_create(root, "R.c1.d", 0) == 0);
    CHECK(maildir_folders_create(root, "R.c2", 0) == 0);
    CHECK(maildir_folders_create(root, "Rx", 0) == 0);
    CHECK(maildir_folders_create(root, "R-y", 0) == 0);
    path_join(dir, sizeof(dir), root, ".R/cur");
    write_file(dir, "1.M1.h:2,S", "m1");
    write_file(root, ".R/dovecot-uidlist", "3 V7 N2\n1 :1.M1.h\n");
    path_join(dir, sizeof(dir), root, ".R.c1.d/new");
    write_file(dir, "2.M2.h", "m2");

    CHECK(maildir_folders_rename(root, "R", "S", 0) == 0);
    CHECK(!exists(root, ".R"));
    CHECK(!exists(root, ".R.c1"));
    CHECK(!exists(root, ".R.c1.d"));
    CHECK(!exists(root, ".R.c2"));
    CHECK(exists(root, ".S/cur/1.M1.h:2,S"));
    CHECK(exists(root, ".S.c1/cur"));
    CHECK(exists(root, ".S.c1.d/new/2.M2.h"));
    CHECK(exists(root, ".S.c2/cur"));
    CHECK(exists(root, ".Rx/cur"));
    CHECK(exists(root, ".R-y/cur"));
    read_file(root, ".S/dovecot-uidlist", buf, sizeof(buf));
    CHECK_STR(buf, "3 V7 N2\n1 :1.M1.h\n"); /* UIDs and UIDVALIDITY kept */

    CHECK(maildir_folders_rename(root, "R", "T", 0) == -ENOENT);
    CHECK(maildir_folders_rename(root, "S", "Rx", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "S", "S", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "S", "S.sub", 0) == -EINVAL);
    CHECK(maildir_folders_rename(root, "S", "S.c1.x", 0) == -EINVAL);
    CHECK(maildir_folders_rename(root, "S", "INBOX", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "S", "inbox", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "S", "a..b", 0) == -EINVAL);
    CHECK(maildir_folders_rename(root, "S..x", "Q", 0) == -EINVAL);
    CHECK(maildir_folders_rename(root, "S", "SS", 0) == 0); /* prefix, not child */
    CHECK(exists(root, ".SS.c1.d/new/2.M2.h"));

    /* A child's target exists: nothing moves. */
    CHECK(maildir_folders_create(root, "U.c2", 0) == 0);
    CHECK(maildir_folders_rename(root, "SS", "U", 0) == -EEXIST);
    CHECK(exists(root, ".SS/cur"));
    CHECK(exists(root, ".SS.c2/cur"));
    CHECK(!exists(root, ".U"));

    /* Up the tree: "SS.c1" -> "Top" takes "SS.c1.d" along. */
    CHECK(maildir_folders_rename(root, "SS.c1", "SS", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "SS.c1", "Top", 0) == 0);
    CHECK(exists(root, ".Top/cur"));
    CHECK(exists(root, ".Top.d/new/2.M2.h"));
    CHECK(!exists(root, ".SS.c1"));
    CHECK(exists(root, ".SS.c2/cur"));

    /* A parent that is only missing: its children stay where they are. */
    CHECK(maildir_folders_create(root, "v.w", 0) == 0);
    CHECK(maildir_folders_rename(root, "v", "V", 0) == -ENOENT);

    /* inbox.x is INBOX.x on both sides. */
    CHECK(maildir_folders_create(root, "inbox.q", 0) == 0);
    CHECK(maildir_folders_rename(root, "INBOX.q", "inbox.r", 0) == 0);
    CHECK(exists(root, ".INBOX.r/cur"));
    CHECK(!exists(root, ".INBOX.q"));

    /* A child's new name too long: nothing moves. */
    char longname[300];
    memset(longname, 'l', sizeof(longname));
    memcpy(longname, "L.", 2);
    longname[MAILDIR_FOLDERS_NAME_BYTES_MAX] = '\0';
    CHECK(maildir_folders_create(root, "L", 0) == 0);
    CHECK(maildir_folders_create(root, longname, 0) == 0);
    CHECK(maildir_folders_rename(root, "L", "LL", 0) == -ENAMETOOLONG);
    CHECK(exists(root, ".L/cur"));
    CHECK(!exists(root, ".LL"));

    /* A child's new name too deep: new has DEPTH_MAX - 1 levels, so the
     * child gets DEPTH_MAX (fine) or, one level deeper, DEPTH_MAX + 1. */
    char deep[200];
    size_t deep_len = 0;
    for (size_t k = 0; k < MAILDIR_FOLDERS_DEPTH_MAX - 1; k++) {
        if (k > 0) {
            deep[deep_len++] = '.';
        }
        deep[deep_len++] = 'z';
    }
    deep[deep_len] = '\0';
    CHECK(maildir_folders_create(root, "G", 0) == 0);
    CHECK(maildir_folders_create(root, "G.h", 0) == 0);
    CHECK(maildir_folders_create(root, "G.h.i", 0) == 0);
    CHECK(maildir_folders_rename(root, "G", deep, 0) == -ENAMETOOLONG);
    CHECK(exists(root, ".G.h.i/cur"));
    CHECK(maildir_folders_delete(root, "G.h.i") == 0);
    CHECK(maildir_folders_rename(root, "G", deep, 0) == 0);
    char deep_child[256];
    snprintf(deep_child, sizeof(deep_child), ".%s.h", deep);
    CHECK(exists(root, deep_child));

    /* More children than folders_max. */
    CHECK(maildir_folders_create(root, "K", 0) == 0);
    CHECK(maildir_folders_create(root, "K.1", 0) == 0);
    CHECK(maildir_folders_create(root, "K.2", 0) == 0);
    CHECK(maildir_folders_rename(root, "K", "K2", 1) == -E2BIG);
    CHECK(exists(root, ".K.2/cur"));
    CHECK(maildir_folders_rename(root, "K", "K2", 0) == 0);
    CHECK(exists(root, ".K2.2/cur"));
    CHECK(!has_entry_prefix(root, "..toaster"));
}

static void
test_rename_inbox(void)
{
    char root[256];
    new_root(root, sizeof(root), "inboxrename");
    char dir[512];
    char buf[256];
    path_join(dir, sizeof(dir), root, "new");
    write_file(dir, "1.M1.h,S=2", "m1");
    path_join(dir, sizeof(dir), root, "cur");
    write_file(dir, "2.M2.h,S=2:2,Sa", "m2");
    write_file(dir, "3.M3.h,S=2:2,", "m3");
    write_file(root, "dovecot-keywords", "0 $Forwarded\n");
    write_file(root, "dovecot-uidlist", "3 V5 N4\n1 :1.M1.h,S=2\n");
    CHECK(maildir_folders_create(root, "INBOX.kid", 0) == 0);
    CHECK(maildir_folders_create(root, "Taken", 0) == 0);

    char link[600];
    path_join(link, sizeof(link), root, "cur/a-link");
    CHECK(symlink("/etc/passwd", link) == 0); /* no message: stays */
    make_dir(root, "cur/subdir");             /* no message: stays */
    CHECK(maildir_folders_rename(root, "INBOX", "Taken", 0) == -EEXIST);
    CHECK(maildir_folders_rename(root, "INBOX", "INBOX", 0) == -EEXIST);
    CHECK(exists(root, "new/1.M1.h,S=2"));

    CHECK(maildir_folders_rename(root, "inbox", "Old", 0) == 0);
    CHECK(exists(root, ".Old/new/1.M1.h,S=2"));
    CHECK(exists(root, ".Old/cur/2.M2.h,S=2:2,Sa"));
    CHECK(exists(root, ".Old/cur/3.M3.h,S=2:2,"));
    CHECK(exists(root, ".Old/maildirfolder"));
    CHECK(!exists(root, "new/1.M1.h,S=2"));
    CHECK(!exists(root, "cur/2.M2.h,S=2:2,Sa"));
    CHECK(exists(root, "cur"));
    CHECK(exists(root, "new"));
    read_file(root, ".Old/dovecot-keywords", buf, sizeof(buf));
    CHECK_STR(buf, "0 $Forwarded\n");
    CHECK(!exists(root, ".Old/dovecot-keywords.lock"));
    read_file(root, "dovecot-uidlist", buf, sizeof(buf));
    CHECK_STR(buf, "3 V5 N4\n1 :1.M1.h,S=2\n"); /* left for the next sync */
    CHECK(exists(root, ".INBOX.kid/cur"));      /* children stay */
    CHECK(!exists(root, ".Old.kid"));
    CHECK(exists(root, "cur/a-link"));
    CHECK(exists(root, "cur/subdir"));
    CHECK(!exists(root, ".Old/cur/a-link"));

    /* An empty INBOX without dovecot-keywords renames too. */
    char kw[512];
    path_join(kw, sizeof(kw), root, "dovecot-keywords");
    CHECK(unlink(kw) == 0);
    CHECK(maildir_folders_rename(root, "INBOX", "Old2", 0) == 0);
    CHECK(exists(root, ".Old2/cur"));
    CHECK(!exists(root, ".Old2/dovecot-keywords"));

    /* The folder limit holds for the folder INBOX rename makes: 4 now. */
    CHECK(maildir_folders_rename(root, "INBOX", "Old3", 4) == -EDQUOT);
    CHECK(!exists(root, ".Old3"));
    CHECK(maildir_folders_rename(root, "INBOX", "Old3", 5) == 0);
}

/* ---- default folders ---- */

static void
test_ensure_defaults(void)
{
    char root[256];
    new_root(root, sizeof(root), "defaults");
    char buf[1024];

    CHECK(maildir_folders_ensure_defaults(root) == 0);
    CHECK(exists(root, ".Sent/cur"));
    CHECK(exists(root, ".Drafts/cur"));
    CHECK(exists(root, ".Junk/cur"));
    CHECK(exists(root, ".Trash/cur"));
    CHECK(!exists(root, ".Archive"));
    read_file(root, "subscriptions", buf, sizeof(buf));
    CHECK_STR(buf, "V\t2\n\nSent\nDrafts\nJunk\nTrash\n");
    CHECK(!exists(root, "subscriptions.lock"));

    /* Twice: nothing changes (the file is not even rewritten). */
    struct stat st1;
    struct stat st2;
    char sub_path[512];
    path_join(sub_path, sizeof(sub_path), root, "subscriptions");
    CHECK(stat(sub_path, &st1) == 0);
    CHECK(maildir_folders_ensure_defaults(root) == 0);
    CHECK(stat(sub_path, &st2) == 0);
    CHECK(st1.st_ino == st2.st_ino);
    read_file(root, "subscriptions", buf, sizeof(buf));
    CHECK_STR(buf, "V\t2\n\nSent\nDrafts\nJunk\nTrash\n");

    /* The user unsubscribed all but Sent and deleted Trash: Trash comes
     * back subscribed, the others stay unsubscribed. Other lines stay. */
    write_file(root, "subscriptions", "V\t2\n\nSent\nArchive\t2024\n");
    CHECK(maildir_folders_delete(root, "Trash") == 0);
    CHECK(maildir_folders_ensure_defaults(root) == 0);
    CHECK(exists(root, ".Trash/cur"));
    read_file(root, "subscriptions", buf, sizeof(buf));
    CHECK_STR(buf, "V\t2\n\nSent\nArchive\t2024\nTrash\n");

    /* A held subscriptions lock: nothing is done, try again later. */
    CHECK(maildir_folders_delete(root, "Drafts") == 0);
    write_file(root, "subscriptions.lock", "");
    CHECK(maildir_folders_ensure_defaults(root) == -EAGAIN);
    CHECK(!exists(root, ".Drafts"));
    char lock[512];
    path_join(lock, sizeof(lock), root, "subscriptions.lock");
    CHECK(unlink(lock) == 0);
    CHECK(maildir_folders_ensure_defaults(root) == 0);
    CHECK(exists(root, ".Drafts/cur"));
    read_file(root, "subscriptions", buf, sizeof(buf));
    CHECK_STR(buf, "V\t2\n\nSent\nArchive\t2024\nTrash\nDrafts\n");

    /* An old-format file (no version line, '.' separated) is kept and
     * written back in the current format. */
    write_file(root, "subscriptions", "Sent\nArchive.2024\n");
    CHECK(maildir_folders_delete(root, "Junk") == 0);
    CHECK(maildir_folders_ensure_defaults(root) == 0);
    read_file(root, "subscriptions", buf, sizeof(buf));
    CHECK_STR(buf, "V\t2\n\nSent\nArchive\t2024\nJunk\n");

    char missing_root[256];
    path_join(missing_root, sizeof(missing_root), base, "nosuchroot");
    CHECK(maildir_folders_ensure_defaults(missing_root) == -ENOENT);
}

int
main(void)
{
    snprintf(base, sizeof(base), "/tmp/test_maildir_folders.XXXXXX");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_name_check();
    test_path();
    test_special_use();
    test_create_list();
    test_limits();
    test_delete();
    test_rename();
    test_rename_inbox();
    test_ensure_defaults();
    rm_tree(base);
    UNIT_DONE();
}
