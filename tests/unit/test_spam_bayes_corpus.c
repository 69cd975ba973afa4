/*
 * tests/unit/test_spam_bayes_corpus.c - the Bayes classifier learns the
 * corpus the project ships (tests/data/bayes/train: 120 spam, 120 ham,
 * written by tests/data/bayes/make_corpus.py) from files, as `toasterctl
 * learn` does, and is judged on the held-out mail (tests/data/bayes/test:
 * 20 spam, 20 ham, never learned).
 *
 * A held-out message counts as right only when the classifier takes a side
 * the scorer acts on (filters/spam_score.c: BAYES_SPAM at >= 0.55,
 * BAYES_HAM at <= 0.45); the dead zone and "no verdict" (-ENODATA) count
 * as wrong. Each class must be at least 90% right. The confusion numbers
 * are printed. Then the same corpus learned with the labels swapped must
 * get at most 10% right - a classifier that says "spam" or "ham" whatever
 * the words cannot pass both. Also: the default min_learns (200) gate says
 * nothing with 120 learns per class, and learning a file twice is refused
 * (-EALREADY), so the 240 training files really are 240 messages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/spam_bayes.h"
#include "filters/spam_message.h"
#include "tests/unit/unit.h"

int main(void);

#define CORPUS_ROOT SPAM_SOURCE_ROOT "/tests/data/bayes"
#define TRAIN_PER_CLASS 120u
#define HELD_OUT_PER_CLASS 20u
#define MIN_LEARNS_CORPUS 100u /* below the 120 learned per class */
#define ACCURACY_MIN_PERCENT 90u
#define KV_ENTRIES 65536u
#define MESSAGE_BYTES_MAX 65536u

struct confusion {
    unsigned spam;      /* BAYES_SPAM would fire */
    unsigned ham;       /* BAYES_HAM would fire */
    unsigned unsure;    /* inside 0.45..0.55 */
    unsigned no_answer; /* -ENODATA: too few tokens with evidence */
};

static int
by_path(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The .eml files of a directory, sorted, as full paths; returns the count. */
static size_t
list_messages(const char *dir, char paths_out[][512], size_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        (void)fprintf(stderr, "cannot open %s: %s\n", dir, strerror(errno));
        return 0;
    }
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".eml") != 0) {
            continue;
        }
        if (n == cap) {
            n++; /* more than expected: reported by the caller's check */
            break;
        }
        (void)snprintf(paths_out[n], sizeof(paths_out[n]), "%s/%s", dir, e->d_name);
        n++;
    }
    (void)closedir(d);
    qsort(paths_out, n < cap ? n : cap, sizeof(paths_out[0]), by_path);
    return n;
}

/* Learn every message of dir as is_spam; returns how many were learned. */
static unsigned
learn_dir(struct kv *kv, const char *dir, bool is_spam)
{
    static char paths[TRAIN_PER_CLASS + 1][512];
    size_t n = list_messages(dir, paths, TRAIN_PER_CLASS + 1);
    CHECK(n == TRAIN_PER_CLASS);
    unsigned learned = 0;
    for (size_t i = 0; i < n && i < TRAIN_PER_CLASS; i++) {
        int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        if (fd < 0) {
            continue;
        }
        int rc = spam_bayes_learn_fd(kv, fd, is_spam);
        (void)close(fd);
        if (rc == 0) {
            learned++;
        } else {
            (void)fprintf(stderr, "learning %s: %s\n", paths[i], strerror(-rc));
        }
    }
    return learned;
}

static int
classify_file(struct kv *kv, const char *path, uint32_t min_learns, double *prob_out)
{
    char *buf = malloc(MESSAGE_BYTES_MAX);
    if (buf == NULL) {
        return -ENOMEM;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        free(buf);
        return -errno;
    }
    ssize_t len = read(fd, buf, MESSAGE_BYTES_MAX);
    (void)close(fd);
    if (len <= 0 || (size_t)len == MESSAGE_BYTES_MAX) {
        free(buf);
        return -EFBIG; /* empty, unreadable, or bigger than a corpus message may be */
    }
    struct spam_message *m = NULL;
    int rc = spam_message_analyse(buf, (size_t)len, &m);
    free(buf);
    if (rc != 0) {
        return rc;
    }
    rc = spam_bayes_classify(kv, m, min_learns, prob_out);
    spam_message_destroy(&m);
    return rc;
}

static struct confusion
judge_dir(struct kv *kv, const char *dir, bool verbose)
{
    static char paths[HELD_OUT_PER_CLASS + 1][512];
    struct confusion c = {0};
    size_t n = list_messages(dir, paths, HELD_OUT_PER_CLASS + 1);
    CHECK(n == HELD_OUT_PER_CLASS);
    for (size_t i = 0; i < n && i < HELD_OUT_PER_CLASS; i++) {
        double prob = -1.0;
        int rc = classify_file(kv, paths[i], MIN_LEARNS_CORPUS, &prob);
        CHECK(rc == 0 || rc == -ENODATA);
        if (rc != 0) {
            c.no_answer++;
        } else if (prob >= 0.55) {
            c.spam++;
        } else if (prob <= 0.45) {
            c.ham++;
        } else {
            c.unsure++;
        }
        if (verbose) {
            (void)printf("  %s: %s %.4f\n", strrchr(paths[i], '/') + 1,
                         rc == 0 ? "p(spam)" : "no answer", rc == 0 ? prob : 0.0);
        }
    }
    return c;
}

static void
print_confusion(const char *label, const struct confusion *c)
{
    (void)printf("%-22s -> spam %2u, ham %2u, unsure %2u, no answer %2u\n", label, c->spam,
                 c->ham, c->unsure, c->no_answer);
}

static void
test_corpus(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(KV_ENTRIES, NULL, NULL, &kv) == 0);
    if (kv == NULL) {
        return;
    }
    CHECK(learn_dir(kv, CORPUS_ROOT "/train/spam", true) == TRAIN_PER_CLASS);
    CHECK(learn_dir(kv, CORPUS_ROOT "/train/ham", false) == TRAIN_PER_CLASS);
    uint64_t spam_learns = 0;
    uint64_t ham_learns = 0;
    CHECK(spam_bayes_learn_counts(kv, &spam_learns, &ham_learns) == 0);
    CHECK(spam_learns == TRAIN_PER_CLASS && ham_learns == TRAIN_PER_CLASS);

    /* Learning the same file again changes nothing. */
    int fd = open(CORPUS_ROOT "/train/spam/000.eml", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(spam_bayes_learn_fd(kv, fd, true) == -EALREADY);
        (void)close(fd);
    }

    /* The default gate (Rspamd's 200) says nothing yet. */
    double prob = -1.0;
    CHECK(classify_file(kv, CORPUS_ROOT "/test/spam/000.eml", SPAM_BAYES_MIN_LEARNS_DEFAULT,
                        &prob) == -ENODATA);
    CHECK(classify_file(kv, CORPUS_ROOT "/test/ham/000.eml", SPAM_BAYES_MIN_LEARNS_DEFAULT,
                        &prob) == -ENODATA);

    (void)printf("held-out spam:\n");
    struct confusion spam = judge_dir(kv, CORPUS_ROOT "/test/spam", true);
    (void)printf("held-out ham:\n");
    struct confusion ham = judge_dir(kv, CORPUS_ROOT "/test/ham", true);
    print_confusion("held-out spam (20)", &spam);
    print_confusion("held-out ham (20)", &ham);
    unsigned spam_percent = spam.spam * 100u / HELD_OUT_PER_CLASS;
    unsigned ham_percent = ham.ham * 100u / HELD_OUT_PER_CLASS;
    (void)printf("accuracy: spam %u%%, ham %u%% (minimum %u%%)\n", spam_percent, ham_percent,
                 ACCURACY_MIN_PERCENT);
    CHECK(spam_percent >= ACCURACY_MIN_PERCENT);
    CHECK(ham_percent >= ACCURACY_MIN_PERCENT);
    kv_destroy(&kv);
}

/* Labels swapped: a classifier that reads the words now gets it wrong. */
static void
test_corpus_swapped_labels(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(KV_ENTRIES, NULL, NULL, &kv) == 0);
    if (kv == NULL) {
        return;
    }
    CHECK(learn_dir(kv, CORPUS_ROOT "/train/spam", false) == TRAIN_PER_CLASS);
    CHECK(learn_dir(kv, CORPUS_ROOT "/train/ham", true) == TRAIN_PER_CLASS);
    struct confusion spam = judge_dir(kv, CORPUS_ROOT "/test/spam", false);
    struct confusion ham = judge_dir(kv, CORPUS_ROOT "/test/ham", false);
    print_confusion("swapped: spam (20)", &spam);
    print_confusion("swapped: ham (20)", &ham);
    CHECK(spam.spam * 100u / HELD_OUT_PER_CLASS <= 100u - ACCURACY_MIN_PERCENT);
    CHECK(ham.ham * 100u / HELD_OUT_PER_CLASS <= 100u - ACCURACY_MIN_PERCENT);
    kv_destroy(&kv);
}

int
main(void)
{
    test_corpus();
    test_corpus_swapped_labels();
    UNIT_DONE();
}
