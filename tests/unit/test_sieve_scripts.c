/*
 * tests/unit/test_sieve_scripts.c - a user's scripts in Pigeonhole's
 * layout, in a temporary home: put, list, get, activate (the
 * .dovecot.sieve link and its target), deactivate, rename (the link
 * follows), delete (never the active one), the quotas, and a hand-made
 * regular .dovecot.sieve that is kept when another script is activated.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sieve_scripts.h"
#include "tests/unit/unit.h"

static char home[256];

static const struct sieve_scripts_limits no_limits = { .max_script_size = 1 << 20 };

static bool
link_target_is(const char *want)
{
    char path[512];
    char target[512];
    (void)snprintf(path, sizeof(path), "%s/.dovecot.sieve", home);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        return want == NULL;
    }
    target[n] = '\0';
    return want != NULL && strcmp(target, want) == 0;
}

static void
test_put_get_list(void)
{
    CHECK(sieve_scripts_list(home, NULL, 0) == 0); /* no sieve/ yet */
    CHECK(sieve_scripts_put(home, "work", "keep;\r\n", 7, &no_limits) == 0);
    CHECK(sieve_scripts_put(home, "alpha", "discard;\r\n", 10, &no_limits) == 0);
    CHECK(sieve_scripts_put(home, "work", "stop;\r\n", 7, &no_limits) == 0); /* replace */
    struct sieve_scripts_entry entries[8];
    int n = sieve_scripts_list(home, entries, 8);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(entries[0].name, "alpha");
        CHECK_STR(entries[1].name, "work");
        CHECK(!entries[0].is_active && !entries[1].is_active);
    }
    char *bytes = NULL;
    size_t len = 0;
    CHECK(sieve_scripts_get(home, "work", 1 << 20, &bytes, &len) == 0);
    CHECK(bytes != NULL && len == 7 && memcmp(bytes, "stop;\r\n", 7) == 0);
    free(bytes);
    CHECK(sieve_scripts_get(home, "missing", 1 << 20, &bytes, &len) == -ENOENT);
    CHECK(sieve_scripts_get(home, "work", 3, &bytes, &len) == -EFBIG);

    /* The file is where Pigeonhole keeps it, and tmp/ holds nothing. */
    char path[512];
    struct stat st;
    (void)snprintf(path, sizeof(path), "%s/sieve/work.sieve", home);
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    (void)snprintf(path, sizeof(path), "%s/sieve/tmp", home);
    CHECK(rmdir(path) == 0); /* empty */
}

static void
test_active(void)
{
    char name[SIEVE_SCRIPTS_NAME_BYTES];
    CHECK(sieve_scripts_active(home, name, sizeof(name)) == 0 && name[0] == '\0');
    CHECK(sieve_scripts_set_active(home, "nope") == -ENOENT);
    CHECK(sieve_scripts_set_active(home, "work") == 0);
    CHECK(link_target_is("sieve/work.sieve"));
    CHECK(sieve_scripts_active(home, name, sizeof(name)) == 0);
    CHECK_STR(name, "work");
    struct sieve_scripts_entry entries[8];
    CHECK(sieve_scripts_list(home, entries, 8) == 2);
    CHECK(!entries[0].is_active && entries[1].is_active);

    CHECK(sieve_scripts_delete(home, "work") == -EBUSY);
    CHECK(sieve_scripts_rename(home, "work", "alpha") == -EEXIST);
    CHECK(sieve_scripts_rename(home, "work", "office") == 0);
    CHECK(link_target_is("sieve/office.sieve"));
    CHECK(sieve_scripts_rename(home, "ghost", "x") == -ENOENT);

    CHECK(sieve_scripts_set_active(home, "alpha") == 0);
    CHECK(link_target_is("sieve/alpha.sieve"));
    CHECK(sieve_scripts_delete(home, "office") == 0);
    CHECK(sieve_scripts_delete(home, "office") == -ENOENT);
    CHECK(sieve_scripts_set_active(home, "") == 0);
    CHECK(link_target_is(NULL));
    CHECK(sieve_scripts_set_active(home, "") == 0); /* nothing active: fine */
    CHECK(sieve_scripts_delete(home, "alpha") == 0);
}

static void
test_quota(void)
{
    struct sieve_scripts_limits limits = {
        .max_script_size = 100, .quota_max_scripts = 2, .quota_max_storage = 150,
    };
    char text[120];
    memset(text, '#', sizeof(text));
    CHECK(sieve_scripts_have_space(home, "a", 101, &limits) == -EFBIG);
    CHECK(sieve_scripts_put(home, "a", text, 101, &limits) == -EFBIG);
    CHECK(sieve_scripts_put(home, "a", text, 100, &limits) == 0);
    CHECK(sieve_scripts_have_space(home, "b", 60, &limits) == -EDQUOT);
    CHECK(sieve_scripts_put(home, "b", text, 50, &limits) == 0);
    CHECK(sieve_scripts_have_space(home, "c", 1, &limits) == -EMLINK);
    /* Replacing counts the new size only. */
    CHECK(sieve_scripts_have_space(home, "a", 100, &limits) == 0);
    CHECK(sieve_scripts_put(home, "b", text, 50, &limits) == 0);
    CHECK(sieve_scripts_delete(home, "a") == 0);
    CHECK(sieve_scripts_delete(home, "b") == 0);
}

static void
test_regular_file_kept(void)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/.dovecot.sieve", home);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, "keep;\n", 6) == 6);
    (void)close(fd);
    char name[SIEVE_SCRIPTS_NAME_BYTES];
    CHECK(sieve_scripts_active(home, name, sizeof(name)) == 0 && name[0] == '\0');
    CHECK(sieve_scripts_put(home, "new", "stop;\n", 6, &no_limits) == 0);
    CHECK(sieve_scripts_set_active(home, "new") == 0);
    CHECK(link_target_is("sieve/new.sieve"));
    char *bytes = NULL;
    size_t len = 0;
    CHECK(sieve_scripts_get(home, "dovecot.orig", 1 << 20, &bytes, &len) == 0);
    CHECK(len == 6 && bytes != NULL && memcmp(bytes, "keep;\n", 6) == 0);
    free(bytes);
}

int
main(void)
{
    (void)snprintf(home, sizeof(home), "/tmp/toaster-sieve-scripts-XXXXXX");
    if (mkdtemp(home) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_put_get_list();
    test_active();
    test_quota();
    test_regular_file_kept();
    char command[600];
    (void)snprintf(command, sizeof(command), "rm -rf '%s'", home);
    (void)system(command);
    UNIT_DONE();
}
