/*
 * tests/unit/test_spool_rewrite.c - spool_rewrite (store/spool.h), the one
 * kernel copy that puts the filters' edits into a message: insertions at
 * the start, middle and end, deletions, a replacement, several edits in
 * one pass, named and unnamed spool files, and the refusals (edits out of
 * order, past the end, too many) that leave the file as it was.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/spool.h"
#include "tests/unit/unit.h"

static char dir[256];
static int dir_fd = -1;

/* A named spool file "ID" holding text; returns its fd. */
static int
spool_make(const char *id, const char *text)
{
    int fd = openat(dir_fd, id, O_CREAT | O_TRUNC | O_RDWR, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    return fd;
}

static void
check_content(int fd, const char *want)
{
    char got[4096];
    ssize_t n = pread(fd, got, sizeof(got), 0);
    CHECK(n >= 0);
    CHECK_BYTES(got, n < 0 ? 0 : (size_t)n, want, strlen(want));
}

static void
test_edits(bool is_unnamed)
{
    const char *text = "Return-Path: <a@b>\r\nSubject: hi\r\nX-Old: 1\r\n\r\nbody\r\n";
    int fd = spool_make("0001", text);
    uint64_t size = strlen(text);
    if (is_unnamed) {
        /* An unnamed spool file: its name is not used. */
        (void)unlinkat(dir_fd, "0001", 0);
    }
    struct spool_edit edits[] = {
        { .offset = 20, .bytes = "A-R: x\r\n", .len = 8 },                 /* below Return-Path */
        { .offset = 20, .delete_len = 13, .bytes = "Subject: [S] hi\r\n", .len = 17 },
        { .offset = 33, .delete_len = 10 },                                 /* X-Old goes */
        { .offset = size, .bytes = "tail\r\n", .len = 6 },                  /* at the very end */
    };
    int old_fd = fd;
    CHECK(spool_rewrite(dir_fd, is_unnamed, "0001", &fd, &size, edits, 4) == 0);
    CHECK(fd != old_fd);
    const char *want = "Return-Path: <a@b>\r\nA-R: x\r\nSubject: [S] hi\r\n\r\nbody\r\ntail\r\n";
    CHECK(size == strlen(want));
    check_content(fd, want);
    if (!is_unnamed) {
        /* The name now holds the new file, and no temporary is left. */
        int by_name = openat(dir_fd, "0001", O_RDONLY);
        CHECK(by_name >= 0);
        check_content(by_name, want);
        (void)close(by_name);
        CHECK(faccessat(dir_fd, "0001.new", F_OK, 0) != 0);
    }
    (void)close(fd);
    (void)unlinkat(dir_fd, "0001", 0);
}

static void
test_refusals(void)
{
    const char *text = "Return-Path: <a@b>\r\n\r\nbody\r\n";
    int fd = spool_make("0002", text);
    uint64_t size = strlen(text);
    struct spool_edit unordered[] = {
        { .offset = 10, .bytes = "x", .len = 1 },
        { .offset = 5, .bytes = "y", .len = 1 },
    };
    CHECK(spool_rewrite(dir_fd, false, "0002", &fd, &size, unordered, 2) == -EINVAL);
    struct spool_edit overlapping[] = {
        { .offset = 2, .delete_len = 5 },
        { .offset = 4, .bytes = "y", .len = 1 },
    };
    CHECK(spool_rewrite(dir_fd, false, "0002", &fd, &size, overlapping, 2) == -EINVAL);
    struct spool_edit past_end[] = { { .offset = size, .delete_len = 1 } };
    CHECK(spool_rewrite(dir_fd, false, "0002", &fd, &size, past_end, 1) == -EINVAL);
    struct spool_edit many[SPOOL_EDITS_MAX + 1];
    memset(many, 0, sizeof(many));
    CHECK(spool_rewrite(dir_fd, false, "0002", &fd, &size, many, SPOOL_EDITS_MAX + 1) ==
          -EINVAL);
    /* Nothing changed, and no edit at all is no work. */
    CHECK(size == strlen(text));
    check_content(fd, text);
    int same = fd;
    CHECK(spool_rewrite(dir_fd, false, "0002", &fd, &size, NULL, 0) == 0 && fd == same);
    (void)close(fd);
    (void)unlinkat(dir_fd, "0002", 0);
}

int
main(void)
{
    (void)snprintf(dir, sizeof(dir), "/tmp/toaster-spool-rewrite-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
    test_edits(false);
    test_edits(true);
    test_refusals();
    (void)close(dir_fd);
    (void)rmdir(dir);
    UNIT_DONE();
}
