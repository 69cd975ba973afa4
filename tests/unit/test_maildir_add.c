/*
 * tests/unit/test_maildir_add.c - adding messages to a Maildir folder the
 * way APPEND, COPY and MOVE do: from bytes (written into tmp/, renamed), from
 * an existing file (hard link, no copy: same inode), from an unnamed file
 * (O_TMPFILE linked in), with flags and keyword letters in the name, the
 * INTERNALDATE as mtime, unique names, and nothing left in tmp/.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/maildir_add.h"
#include "tests/unit/unit.h"

static char root[64];

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static size_t
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    if (d == NULL) {
        return 0;
    }
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

int main(void);

int
main(void)
{
    snprintf(root, sizeof(root), "/tmp/toaster-add-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char p[512];
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", root, subs[i]);
        CHECK(mkdir(p, 0700) == 0);
    }
    static const char msg[] = "From: a@b\r\nSubject: hi\r\n\r\nbody\r\n";

    /* From bytes, with flags, keywords and a date. */
    struct maildir_add_source bytes = {.fd = -1, .bytes = msg, .size = sizeof(msg) - 1};
    char base[256];
    CHECK(maildir_add(root, &bytes, MAILDIR_FLAG_SEEN | MAILDIR_FLAG_FLAGGED, 0x5u, 1000000000,
                      base, sizeof(base)) == 0);
    char sizes[64];
    snprintf(sizes, sizeof(sizes), ",S=%zu,W=%zu", sizeof(msg) - 1, sizeof(msg) - 1);
    CHECK(strstr(base, sizes) != NULL);
    CHECK(strstr(base, ":2,FSac") != NULL);
    snprintf(p, sizeof(p), "%s/cur/%s", root, base);
    struct stat st;
    CHECK(stat(p, &st) == 0);
    CHECK(st.st_size == (off_t)(sizeof(msg) - 1));
    CHECK(st.st_mtim.tv_sec == 1000000000);
    char tmpdir[512];
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", root);
    CHECK(count_entries(tmpdir) == 0);
    CHECK(maildir_add_sync(root) == 0);

    /* From a file: a hard link, the same inode. */
    struct maildir_add_source file = {.path = p, .fd = -1, .size = sizeof(msg) - 1};
    char base2[256];
    CHECK(maildir_add(root, &file, 0, 0, 0, base2, sizeof(base2)) == 0);
    CHECK(strcmp(base, base2) != 0);
    char p2[512];
    snprintf(p2, sizeof(p2), "%s/cur/%s", root, base2);
    struct stat st2;
    CHECK(stat(p2, &st2) == 0);
    CHECK(st2.st_ino == st.st_ino);

    /* From an unnamed file (APPEND's spool). */
    int fd = open(root, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
        CHECK(write(fd, msg, sizeof(msg) - 1) == (ssize_t)(sizeof(msg) - 1));
        struct maildir_add_source unnamed = {.fd = fd, .size = sizeof(msg) - 1};
        char base3[256];
        CHECK(maildir_add(root, &unnamed, MAILDIR_FLAG_DRAFT, 0, 1234567890, base3,
                          sizeof(base3)) == 0);
        char p3[512];
        CHECK(strstr(base3, ":2,D") != NULL);
        snprintf(p3, sizeof(p3), "%s/cur/%s", root, base3);
        struct stat st3;
        CHECK(stat(p3, &st3) == 0);
        CHECK(st3.st_size == (off_t)(sizeof(msg) - 1));
        CHECK(st3.st_mtim.tv_sec == 1234567890);
        close(fd);
    }
    CHECK(count_entries(tmpdir) == 0);

    /* A missing source: an error, nothing left behind. */
    struct maildir_add_source gone = {.path = "/nonexistent/x", .fd = -1, .size = 1};
    char base4[256];
    CHECK(maildir_add(root, &gone, 0, 0, 0, base4, sizeof(base4)) == -ENOENT);
    snprintf(p, sizeof(p), "%s/cur", root);
    CHECK(count_entries(p) == (fd >= 0 ? 3u : 2u));
    /* A name that would not fit. */
    char tiny[8];
    CHECK(maildir_add(root, &bytes, 0, 0, 0, tiny, sizeof(tiny)) == -ENAMETOOLONG);

    if (nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        perror(root);
    }
    UNIT_DONE();
}
