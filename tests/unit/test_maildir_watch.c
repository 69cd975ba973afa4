/*
 * tests/unit/test_maildir_watch.c - the Maildir watcher: a file created in
 * new/ or renamed in cur/ of a watched folder is reported (once per burst,
 * with the folder's path; again later while the callback says busy), nothing is reported once the watch is removed
 * or for folders never added, a folder without new/ is refused, a watched
 * folder deleted under the watcher is survived, and stop drops everything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/maildir_watch.h"
#include "tests/unit/unit.h"

int main(void);

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen_path[4096];
static unsigned seen_count;

static unsigned busy_answers; /* say "busy" this many times first */

static bool
on_changed(const char *folder_path)
{
    pthread_mutex_lock(&seen_lock);
    if (busy_answers > 0) {
        busy_answers--;
        pthread_mutex_unlock(&seen_lock);
        return false;
    }
    snprintf(seen_path, sizeof(seen_path), "%s", folder_path);
    seen_count++;
    pthread_mutex_unlock(&seen_lock);
    return true;
}

static unsigned
seen(void)
{
    pthread_mutex_lock(&seen_lock);
    unsigned n = seen_count;
    pthread_mutex_unlock(&seen_lock);
    return n;
}

/* Wait up to ms for the count to pass before; returns the new count. */
static unsigned
wait_seen(unsigned before, unsigned ms)
{
    for (unsigned waited = 0; waited < ms && seen() == before; waited += 5) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return seen();
}

static void
touch(const char *dir, const char *name)
{
    char path[8400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("x", f);
        fclose(f);
    }
}

static void
make_folder(const char *root)
{
    char path[4200];
    mkdir(root, 0700);
    const char *subs[] = {"new", "cur", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, subs[i]);
        mkdir(path, 0700);
    }
}

int
main(void)
{
    char base[] = "/tmp/test_maildir_watch.XXXXXX";
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char folder[4096], other[4096], dir[4200], from[4200], to[4200];
    snprintf(folder, sizeof(folder), "%s/Maildir", base);
    snprintf(other, sizeof(other), "%s/Other", base);
    make_folder(folder);
    make_folder(other);

    /* Not running: add is a no-op. */
    struct maildir_watch_handle h;
    CHECK(maildir_watch_add(folder, &h) == 0 && h.wd_new == -1 && h.wd_cur == -1);

    CHECK(maildir_watch_start(on_changed) == 0);
    CHECK(maildir_watch_add(folder, &h) == 0 && h.wd_new >= 0 && h.wd_cur >= 0);
    struct maildir_watch_handle missing;
    char nowhere[4200];
    snprintf(nowhere, sizeof(nowhere), "%s/none", base);
    CHECK(maildir_watch_add(nowhere, &missing) == -ENOENT && missing.wd_new == -1);

    /* A delivery into new/. */
    unsigned before = seen();
    snprintf(dir, sizeof(dir), "%s/new", folder);
    touch(dir, "1.msg");
    CHECK(wait_seen(before, 2000) > before);
    pthread_mutex_lock(&seen_lock);
    CHECK_STR(seen_path, folder);
    pthread_mutex_unlock(&seen_lock);

    /* A flag change: a rename inside cur/. */
    snprintf(from, sizeof(from), "%s/new/1.msg", folder);
    snprintf(to, sizeof(to), "%s/cur/1.msg:2,S", folder);
    before = wait_seen(seen(), 50);
    CHECK(rename(from, to) == 0);
    CHECK(wait_seen(before, 2000) > before);

    /* A burst of events is one report. */
    nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    before = seen();
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof(name), "burst%d", i);
        snprintf(dir, sizeof(dir), "%s/new", folder);
        touch(dir, name);
    }
    CHECK(wait_seen(before, 2000) == before + 1);
    nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    CHECK(seen() == before + 1);

    /* A busy answer is asked again later, until it is taken. */
    before = seen();
    pthread_mutex_lock(&seen_lock);
    busy_answers = 3;
    pthread_mutex_unlock(&seen_lock);
    touch(dir, "busy");
    CHECK(wait_seen(before, 2000) == before + 1);
    pthread_mutex_lock(&seen_lock);
    CHECK(busy_answers == 0);
    pthread_mutex_unlock(&seen_lock);

    /* A folder never added says nothing. */
    struct timespec settle = {0, 100 * 1000 * 1000};
    nanosleep(&settle, NULL);
    before = seen();
    snprintf(dir, sizeof(dir), "%s/new", other);
    touch(dir, "2.msg");
    CHECK(wait_seen(before, 200) == before);

    /* Removed: silent. */
    maildir_watch_remove(&h);
    CHECK(h.wd_new == -1 && h.wd_cur == -1);
    maildir_watch_remove(&h); /* again: harmless */
    before = seen();
    snprintf(dir, sizeof(dir), "%s/new", folder);
    touch(dir, "3.msg");
    CHECK(wait_seen(before, 200) == before);

    /* A watched folder deleted under the watcher. */
    struct maildir_watch_handle ho;
    CHECK(maildir_watch_add(other, &ho) == 0 && ho.wd_new >= 0);
    snprintf(dir, sizeof(dir), "%s/new/2.msg", other);
    CHECK(unlink(dir) == 0);
    snprintf(dir, sizeof(dir), "rm -rf '%s'", other);
    CHECK(system(dir) == 0);
    nanosleep(&settle, NULL);
    maildir_watch_remove(&ho);

    maildir_watch_stop();
    maildir_watch_stop(); /* again: harmless */
    snprintf(dir, sizeof(dir), "rm -rf '%s'", base);
    CHECK(system(dir) == 0);
    UNIT_DONE();
}
