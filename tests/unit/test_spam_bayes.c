/*
 * tests/unit/test_spam_bayes.c - the Bayes classifier over the embedded
 * key-value store: tokens (distinct, bounded, long words cut, numbers
 * left out), learning a synthetic corpus made here (spammy and hammy
 * vocabularies over shared words), classification of unseen messages of
 * each kind, the min_learns gate at max - 1 and max, the double-learn
 * guard and relearning as the other class, learning from a file, and a
 * store that is down.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "filters/spam_bayes.h"
#include "tests/unit/unit.h"

int main(void);

static const char *const spam_words[] = {
    "viagra", "casino", "lottery", "winner", "bitcoin", "investment", "guaranteed", "pills",
    "discount", "offer", "unsubscribe", "million", "prince", "transfer", "urgent", "claim",
    "prize", "cheap", "replica", "watches", "loans", "credit", "approved", "bonus",
};
static const char *const ham_words[] = {
    "meeting", "agenda", "project", "review", "deadline", "budget", "lunch", "tomorrow",
    "minutes", "draft", "release", "kernel", "patch", "merge", "invoice", "holiday",
    "family", "dinner", "weekend", "report", "schedule", "thanks", "regards", "colleague",
};
static const char *const common_words[] = {
    "the", "and", "you", "for", "with", "this", "that", "have", "from", "your", "will", "please",
};

static uint32_t rng_state = 12345;

static uint32_t
rng(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 16) & 0x7fff;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A message of 25 class words and 10 common words, numbered so each is
 * distinct (the digest differs). */
static size_t
make_message(char *buf, size_t cap, bool is_spam, unsigned serial)
{
    size_t len = (size_t)snprintf(buf, cap, "From: %s@%s\r\nSubject: %s %u\r\n\r\n",
                                  is_spam ? "promo" : "alice",
                                  is_spam ? "deals.example" : "work.example",
                                  is_spam ? "special offer" : "weekly meeting", serial);
    for (int i = 0; i < 35; i++) {
        const char *w;
        if (i % 7 == 6) {
            w = common_words[rng() % COUNT(common_words)];
        } else if (is_spam) {
            w = spam_words[rng() % COUNT(spam_words)];
        } else {
            w = ham_words[rng() % COUNT(ham_words)];
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", w, i % 10 == 9 ? "\r\n" : " ");
    }
    len += (size_t)snprintf(buf + len, cap - len, "\r\nref%u\r\n", serial);
    return len;
}

static int
learn(struct kv *kv, bool is_spam, unsigned serial)
{
    char buf[2048];
    size_t len = make_message(buf, sizeof(buf), is_spam, serial);
    return spam_bayes_learn(kv, buf, len, is_spam);
}

static int
classify(struct kv *kv, bool is_spam, unsigned serial, uint32_t min_learns, double *prob)
{
    char buf[2048];
    size_t len = make_message(buf, sizeof(buf), is_spam, serial);
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(buf, len, &m) == 0);
    int rc = spam_bayes_classify(kv, m, min_learns, prob);
    spam_message_destroy(&m);
    return rc;
}

static void
test_tokens(void)
{
    const char *text = "Subject: Hello hello\r\n\r\n"
                       "Hello HELLO hello an of 12345 2026 "
                       "averyveryveryveryveryverylongwordthatgoesonandon "
                       "averyveryveryveryveryverylongwordthatgoesonandonandon\r\n";
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(text, strlen(text), &m) == 0);
    uint64_t tokens[SPAM_TOKENS_MAX];
    size_t n = spam_bayes_tokens(m, tokens, SPAM_TOKENS_MAX);
    /* "S:hello", "hello", one long-word token (both cut to the same 32
     * bytes); short words and numbers are not tokens. */
    CHECK(n == 3);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = i + 1; k < n; k++) {
            CHECK(tokens[i] != tokens[k]);
        }
    }
    spam_message_destroy(&m);

    /* The bound: many distinct words give SPAM_TOKENS_MAX tokens. */
    size_t cap = 20 * (SPAM_TOKENS_MAX + 100);
    char *big = malloc(cap);
    size_t len = (size_t)snprintf(big, cap, "Subject: x\r\n\r\n");
    for (unsigned i = 0; i < SPAM_TOKENS_MAX + 50; i++) {
        len += (size_t)snprintf(big + len, cap - len, "word%c%c%u ", 'a' + (char)(i % 26),
                                'a' + (char)(i / 26 % 26), i);
    }
    CHECK(spam_message_analyse(big, len, &m) == 0);
    CHECK(spam_bayes_tokens(m, tokens, SPAM_TOKENS_MAX) == SPAM_TOKENS_MAX);
    CHECK(spam_bayes_tokens(m, tokens, 10) == 10);
    spam_message_destroy(&m);
    free(big);
}

static void
test_learn_classify(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(65536, NULL, NULL, &kv) == 0);
    const uint32_t min_learns = 30;
    double prob = -1;
    CHECK(classify(kv, true, 9999, min_learns, &prob) == -ENODATA);

    /* min_learns - 1 of each: still silent. */
    for (unsigned i = 0; i < min_learns - 1; i++) {
        CHECK(learn(kv, true, i) == 0);
        CHECK(learn(kv, false, i) == 0);
    }
    uint64_t s = 0;
    uint64_t h = 0;
    CHECK(spam_bayes_learn_counts(kv, &s, &h) == 0);
    CHECK(s == min_learns - 1 && h == min_learns - 1);
    CHECK(classify(kv, true, 5000, min_learns, &prob) == -ENODATA);
    /* One more spam only: ham is still short. */
    CHECK(learn(kv, true, min_learns - 1) == 0);
    CHECK(classify(kv, true, 5000, min_learns, &prob) == -ENODATA);
    CHECK(learn(kv, false, min_learns - 1) == 0);

    /* Unseen messages of each kind. */
    int spam_right = 0;
    int ham_right = 0;
    for (unsigned i = 0; i < 10; i++) {
        prob = -1;
        CHECK(classify(kv, true, 6000 + i, min_learns, &prob) == 0);
        spam_right += prob > 0.95;
        prob = -1;
        CHECK(classify(kv, false, 7000 + i, min_learns, &prob) == 0);
        ham_right += prob < 0.05 && prob >= 0.0;
    }
    CHECK(spam_right == 10);
    CHECK(ham_right == 10);
    /* With the default gate (200) the same store says nothing. */
    CHECK(classify(kv, true, 6000, SPAM_BAYES_MIN_LEARNS_DEFAULT, &prob) == -ENODATA);

    /* A message of words never seen: too few tokens with evidence. */
    const char *unknown = "Subject: zzz\r\n\r\nquux flob wibble wobble\r\n";
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(unknown, strlen(unknown), &m) == 0);
    CHECK(spam_bayes_classify(kv, m, min_learns, &prob) == -ENODATA);
    spam_message_destroy(&m);
    kv_destroy(&kv);
}

static void
test_double_learn(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(4096, NULL, NULL, &kv) == 0);
    char buf[2048];
    size_t len = make_message(buf, sizeof(buf), true, 42);
    CHECK(spam_bayes_learn(kv, buf, len, true) == 0);
    CHECK(spam_bayes_learn(kv, buf, len, true) == -EALREADY);
    uint64_t s = 0;
    uint64_t h = 0;
    CHECK(spam_bayes_learn_counts(kv, &s, &h) == 0);
    CHECK(s == 1 && h == 0);
    /* The same message relayed again (another Received:) is the same. */
    char relayed[2200];
    int n = snprintf(relayed, sizeof(relayed), "Received: from relay.example\r\n%.*s", (int)len,
                     buf);
    CHECK(spam_bayes_learn(kv, relayed, (size_t)n, true) == -EALREADY);
    /* Learned as ham now: moves from one class to the other. */
    CHECK(spam_bayes_learn(kv, relayed, (size_t)n, false) == 0);
    CHECK(spam_bayes_learn_counts(kv, &s, &h) == 0);
    CHECK(s == 0 && h == 1);
    CHECK(spam_bayes_learn(kv, buf, len, false) == -EALREADY);
    /* Its token counts moved too: every token has a ham count now... */
    char key[64];
    struct spam_message *m = NULL;
    CHECK(spam_message_analyse(buf, len, &m) == 0);
    uint64_t tokens[SPAM_TOKENS_MAX];
    size_t count = spam_bayes_tokens(m, tokens, SPAM_TOKENS_MAX);
    CHECK(count > 0);
    size_t spam_left = 0;
    for (size_t i = 0; i < count; i++) {
        (void)snprintf(key, sizeof(key), "bayes:h:%016llx", (unsigned long long)tokens[i]);
        char v[32];
        size_t vl = 0;
        CHECK(kv_get(kv, key, strlen(key), v, sizeof(v), &vl) == 0);
    }
    /* "ref42" was only in this message: its spam count is gone. */
    const char *only = "Subject: x\r\n\r\nref42\r\n";
    struct spam_message *o = NULL;
    CHECK(spam_message_analyse(only, strlen(only), &o) == 0);
    uint64_t t[4];
    size_t tn = spam_bayes_tokens(o, t, 4);
    for (size_t i = 0; i < tn; i++) {
        (void)snprintf(key, sizeof(key), "bayes:s:%016llx", (unsigned long long)t[i]);
        char v[32];
        size_t vl = 0;
        if (kv_get(kv, key, strlen(key), v, sizeof(v), &vl) == 0) {
            spam_left++;
        }
    }
    CHECK(spam_left == 0);
    spam_message_destroy(&o);
    spam_message_destroy(&m);

    /* A message without words is not learned. */
    CHECK(spam_bayes_learn(kv, "Subject: \r\n\r\n1 2 3\r\n", 20, true) == -ENODATA);
    kv_destroy(&kv);
}

static void
test_learn_fd(void)
{
    struct kv *kv = NULL;
    CHECK(kv_embedded_create(4096, NULL, NULL, &kv) == 0);
    char path[] = "/tmp/test_spam_bayes_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    char buf[2048];
    size_t len = make_message(buf, sizeof(buf), false, 3);
    CHECK(write(fd, buf, len) == (ssize_t)len);
    CHECK(spam_bayes_learn_fd(kv, fd, false) == 0);
    CHECK(spam_bayes_learn_fd(kv, fd, false) == -EALREADY);
    CHECK(spam_bayes_learn(kv, buf, len, false) == -EALREADY);
    uint64_t s = 0;
    uint64_t h = 0;
    CHECK(spam_bayes_learn_counts(kv, &s, &h) == 0 && s == 0 && h == 1);
    CHECK(close(fd) == 0);
    CHECK(unlink(path) == 0);
    kv_destroy(&kv);
}

/* A store that is down: every call answers -EAGAIN. */
static int down_set(struct kv *kv, const void *k, size_t kl, const void *v, size_t vl, uint32_t t)
{
    (void)kv; (void)k; (void)kl; (void)v; (void)vl; (void)t;
    return -EAGAIN;
}
static int down_get(struct kv *kv, const void *k, size_t kl, void *v, size_t vb, size_t *vl)
{
    (void)kv; (void)k; (void)kl; (void)v; (void)vb; (void)vl;
    return -EAGAIN;
}
static int down_del(struct kv *kv, const void *k, size_t kl)
{
    (void)kv; (void)k; (void)kl;
    return -EAGAIN;
}
static int down_incr(struct kv *kv, const void *k, size_t kl, uint32_t t, uint64_t *v)
{
    (void)kv; (void)k; (void)kl; (void)t; (void)v;
    return -EAGAIN;
}
static size_t down_count(struct kv *kv) { (void)kv; return 0; }
static void down_destroy(struct kv *kv) { (void)kv; }

static void
test_store_down(void)
{
    static const struct kv_ops ops = { "down", down_set, down_get, down_del, down_incr,
                                       down_count, down_destroy };
    struct kv down = { .ops = &ops };
    CHECK(learn(&down, true, 1) == -EAGAIN);
    double prob = -1;
    CHECK(classify(&down, true, 1, 1, &prob) == -EAGAIN);
    CHECK(prob == -1);
}

int
main(void)
{
    test_tokens();
    test_learn_classify();
    test_double_learn();
    test_learn_fd();
    test_store_down();
    UNIT_DONE();
}
