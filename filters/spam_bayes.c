/*
 * filters/spam_bayes.c - tokenizer, learning and Robinson/Fisher
 * classification over the key-value store (see spam_bayes.h for the
 * store layout).
 *
 * Owns nothing between calls: every count lives in the store. Runs on
 * any thread; a call uses about 40 KiB of stack. Work per call is bounded
 * by SPAM_TOKENS_MAX store reads or writes, and the text scanned by
 * SPAM_TEXT_BYTES_MAX (the analysis bound).
 *
 * Unlearning decrements with a read and a write (the store has no
 * decrement); two workers unlearning the same token at once may lose one
 * decrement, which moves a count by one - harmless for statistics.
 */
#include "filters/spam_bayes.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "proto/imap/imap_text.h"

/* Robinson's f(w): strength of the prior and its value. */
#define BAYES_ROBINSON_S 1.0
#define BAYES_ROBINSON_X 0.5
/* Tokens closer than this to 0.5 carry no evidence and are left out. */
#define BAYES_MIN_STRENGTH 0.1

#define TOKEN_SET_SLOTS 2048u
static_assert(TOKEN_SET_SLOTS >= 2 * SPAM_TOKENS_MAX, "token set at most half full");

struct token_set {
    uint64_t *out;
    size_t    count;
    size_t    cap;
    uint64_t  slots[TOKEN_SET_SLOTS]; /* 0: free (a hash of 0 is stored as 1) */
};

static uint64_t
fnv1a64(uint64_t h, const void *bytes, size_t len)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

#define FNV64_BASIS 1469598103934665603ull

/* Add one token; false once the set is full. */
static bool
token_add(struct token_set *set, const char *prefix, const char *word, size_t len)
{
    if (set->count >= set->cap) {
        return false;
    }
    uint64_t h = fnv1a64(fnv1a64(FNV64_BASIS, prefix, strlen(prefix)), word, len);
    if (h == 0) {
        h = 1;
    }
    size_t mask = TOKEN_SET_SLOTS - 1;
    size_t s = (size_t)(h & mask);
    while (set->slots[s] != 0) {
        if (set->slots[s] == h) {
            return true;
        }
        s = (s + 1) & mask;
    }
    set->slots[s] = h;
    set->out[set->count++] = h;
    return true;
}

static bool
is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

/* Words of s[0..len) with prefix; false once the set is full. */
static bool
tokenize_text(struct token_set *set, const char *prefix, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_word_byte((unsigned char)s[i])) {
            i++;
        }
        size_t start = i;
        bool is_digits = true;
        char word[SPAM_TOKEN_BYTES_MAX];
        size_t n = 0;
        while (i < len && is_word_byte((unsigned char)s[i])) {
            unsigned char c = (unsigned char)s[i];
            if (!(c >= '0' && c <= '9')) {
                is_digits = false;
            }
            if (n < sizeof(word)) {
                word[n++] = (char)ascii_lower(c);
            }
            i++;
        }
        size_t word_len = i - start;
        if (word_len < 3 || is_digits) {
            continue; /* short words and numbers are noise */
        }
        /* A word longer than the bound is its first bytes, marked long. */
        bool ok = token_add(set, word_len > SPAM_TOKEN_BYTES_MAX ? "L:" : prefix, word, n);
        if (!ok) {
            return false;
        }
    }
    return true;
}

size_t
spam_bayes_tokens(const struct spam_message *message, uint64_t *tokens_out, size_t cap)
{
    ASSERT(message != NULL);
    ASSERT(cap <= SPAM_TOKENS_MAX);
    struct token_set *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        return 0;
    }
    set->out = tokens_out;
    set->cap = cap;

    /* Meta tokens first, so a full set never drops them. */
    if (message->html_part_count > 0 && message->plain_part_count == 0) {
        (void)token_add(set, "M:", "html_only", 9);
    }
    if (message->from_domain[0] != '\0') {
        (void)token_add(set, "M:from:", message->from_domain, strlen(message->from_domain));
    }
    if (message->bad_name_count > 0) {
        (void)token_add(set, "M:", "bad_attachment", 14);
    }
    for (size_t i = 0; i < message->url_domain_count && i < 16; i++) {
        (void)token_add(set, "M:url:", message->url_domains[i],
                        strlen(message->url_domains[i]));
    }
    char subject[1024];
    size_t slen = imap_text_decode_header(message->subject_raw, strlen(message->subject_raw),
                                          subject, sizeof(subject));
    /* Subject words count apart from body words. */
    if (tokenize_text(set, "S:", subject, slen)) {
        (void)tokenize_text(set, "", message->text, message->text_len); /* stops when full */
    }
    size_t count = set->count;
    free(set);
    return count;
}

static void
token_key(char *key, size_t key_bytes, char cls, uint64_t token)
{
    (void)snprintf(key, key_bytes, "bayes:%c:%016" PRIx64, cls, token);
}

static void
digest_key(char *key, size_t key_bytes, const struct spam_message *message)
{
    int n = snprintf(key, key_bytes, "bayes:m:");
    ASSERT(n > 0 && (size_t)n + 2 * SPAM_DIGEST_BYTES < key_bytes);
    for (size_t i = 0; i < SPAM_DIGEST_BYTES; i++) {
        (void)snprintf(key + n + 2 * i, 3, "%02x", message->digest[i]);
    }
}

/* A decimal counter; 0 when absent. */
static int
get_count(struct kv *kv, const char *key, uint64_t *count_out)
{
    char value[32];
    size_t len = 0;
    *count_out = 0;
    int rc = kv_get(kv, key, strlen(key), value, sizeof(value) - 1, &len);
    if (rc == -ENOENT) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    value[len] = '\0';
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            return 0; /* not ours: count nothing */
        }
        v = v * 10 + (uint64_t)(value[i] - '0');
    }
    *count_out = v;
    return 0;
}

static int
decrement(struct kv *kv, const char *key)
{
    uint64_t v = 0;
    int rc = get_count(kv, key, &v);
    if (rc != 0 || v == 0) {
        return rc;
    }
    if (v == 1) {
        rc = kv_delete(kv, key, strlen(key));
        return rc == -ENOENT ? 0 : rc;
    }
    char value[32];
    int n = snprintf(value, sizeof(value), "%" PRIu64, v - 1);
    return kv_set(kv, key, strlen(key), value, (size_t)n, 0);
}

static int
count_tokens(struct kv *kv, const uint64_t *tokens, size_t count, char cls, bool is_add)
{
    char key[KV_KEY_BYTES_MAX];
    for (size_t i = 0; i < count; i++) {
        token_key(key, sizeof(key), cls, tokens[i]);
        int rc;
        if (is_add) {
            uint64_t v;
            rc = kv_incr(kv, key, strlen(key), 0, &v);
        } else {
            rc = decrement(kv, key);
        }
        if (rc != 0) {
            return rc;
        }
    }
    const char *learns = cls == 's' ? "bayes:learns:s" : "bayes:learns:h";
    if (is_add) {
        uint64_t v;
        return kv_incr(kv, learns, strlen(learns), 0, &v);
    }
    return decrement(kv, learns);
}

int
spam_bayes_learn_message(struct kv *kv, const struct spam_message *message, bool is_spam)
{
    ASSERT(kv != NULL);
    ASSERT(message != NULL);
    char dkey[KV_KEY_BYTES_MAX];
    digest_key(dkey, sizeof(dkey), message);
    char seen[8];
    size_t seen_len = 0;
    int rc = kv_get(kv, dkey, strlen(dkey), seen, sizeof(seen), &seen_len);
    if (rc != 0 && rc != -ENOENT && rc != -ENOSPC) {
        return rc;
    }
    char cls = is_spam ? 's' : 'h';
    bool was_learned = rc == 0 && seen_len == 1 && (seen[0] == 's' || seen[0] == 'h');
    if (was_learned && seen[0] == cls) {
        return -EALREADY;
    }
    uint64_t *tokens = malloc(SPAM_TOKENS_MAX * sizeof(*tokens));
    if (tokens == NULL) {
        return -ENOMEM;
    }
    size_t count = spam_bayes_tokens(message, tokens, SPAM_TOKENS_MAX);
    if (count == 0) {
        free(tokens);
        return -ENODATA;
    }
    if (was_learned) {
        rc = count_tokens(kv, tokens, count, seen[0], false);
        if (rc != 0) {
            free(tokens);
            return rc;
        }
    }
    rc = count_tokens(kv, tokens, count, cls, true);
    free(tokens);
    if (rc != 0) {
        return rc;
    }
    return kv_set(kv, dkey, strlen(dkey), &cls, 1, 0);
}

int
spam_bayes_learn(struct kv *kv, const char *msg, size_t len, bool is_spam)
{
    struct spam_message *m = NULL;
    int rc = spam_message_analyse(msg, len, &m);
    if (rc != 0) {
        return rc;
    }
    rc = spam_bayes_learn_message(kv, m, is_spam);
    spam_message_destroy(&m);
    return rc;
}

int
spam_bayes_learn_fd(struct kv *kv, int fd, bool is_spam)
{
    ASSERT(fd >= 0);
    size_t cap = 64 * 1024;
    char *buf = malloc(cap);
    size_t len = 0;
    if (buf == NULL) {
        return -ENOMEM;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= SPAM_LEARN_BYTES_MAX) {
                break; /* the rest is not looked at */
            }
            size_t ncap = cap * 2 > SPAM_LEARN_BYTES_MAX ? SPAM_LEARN_BYTES_MAX : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (nbuf == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            free(buf);
            return -e;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    int rc = spam_bayes_learn(kv, buf, len, is_spam);
    free(buf);
    return rc;
}

int
spam_bayes_learn_counts(struct kv *kv, uint64_t *spam_out, uint64_t *ham_out)
{
    int rc = get_count(kv, "bayes:learns:s", spam_out);
    if (rc != 0) {
        return rc;
    }
    return get_count(kv, "bayes:learns:h", ham_out);
}

/* Upper tail of the chi-square distribution with v (even) degrees of
 * freedom: P(X >= x). */
static double
chi2q(double x, size_t v)
{
    ASSERT(v % 2 == 0);
    double m = x / 2.0;
    double term = exp(-m);
    double sum = term;
    for (size_t i = 1; i < v / 2; i++) {
        term *= m / (double)i;
        sum += term;
    }
    return sum < 1.0 ? sum : 1.0;
}

static int
by_strength_desc(const void *a, const void *b)
{
    double fa = fabs(*(const double *)a - 0.5);
    double fb = fabs(*(const double *)b - 0.5);
    return fa < fb ? 1 : (fa > fb ? -1 : 0);
}

int
spam_bayes_classify(struct kv *kv, const struct spam_message *message, uint32_t min_learns,
                    double *probability_out)
{
    ASSERT(kv != NULL);
    ASSERT(message != NULL);
    uint64_t spam_learns = 0;
    uint64_t ham_learns = 0;
    int rc = spam_bayes_learn_counts(kv, &spam_learns, &ham_learns);
    if (rc != 0) {
        return rc;
    }
    if (spam_learns < min_learns || ham_learns < min_learns || spam_learns == 0 ||
        ham_learns == 0) {
        return -ENODATA;
    }
    uint64_t *tokens = malloc(SPAM_TOKENS_MAX * sizeof(*tokens));
    double *probs = malloc(SPAM_TOKENS_MAX * sizeof(*probs));
    if (tokens == NULL || probs == NULL) {
        free(tokens);
        free(probs);
        return -ENOMEM;
    }
    size_t count = spam_bayes_tokens(message, tokens, SPAM_TOKENS_MAX);
    size_t used = 0;
    char key[KV_KEY_BYTES_MAX];
    for (size_t i = 0; i < count; i++) {
        uint64_t s = 0;
        uint64_t h = 0;
        token_key(key, sizeof(key), 's', tokens[i]);
        rc = get_count(kv, key, &s);
        if (rc == 0) {
            token_key(key, sizeof(key), 'h', tokens[i]);
            rc = get_count(kv, key, &h);
        }
        if (rc != 0) {
            free(tokens);
            free(probs);
            return rc;
        }
        if (s + h == 0) {
            continue;
        }
        double ps = (double)s / (double)spam_learns;
        double ph = (double)h / (double)ham_learns;
        double p = ps / (ps + ph);
        double n = (double)(s + h);
        double f = (BAYES_ROBINSON_S * BAYES_ROBINSON_X + n * p) / (BAYES_ROBINSON_S + n);
        if (fabs(f - 0.5) < BAYES_MIN_STRENGTH) {
            continue;
        }
        probs[used++] = f;
    }
    free(tokens);
    if (used < SPAM_BAYES_MIN_TOKENS) {
        free(probs);
        return -ENODATA;
    }
    qsort(probs, used, sizeof(probs[0]), by_strength_desc);
    if (used > SPAM_BAYES_TOKENS_USED_MAX) {
        used = SPAM_BAYES_TOKENS_USED_MAX;
    }
    double ln_spam = 0.0; /* sum of ln(1 - f) */
    double ln_ham = 0.0;  /* sum of ln(f) */
    for (size_t i = 0; i < used; i++) {
        double f = probs[i];
        /* f stays inside (0, 1): n is finite and the prior pulls it in. */
        ln_spam += log(1.0 - f);
        ln_ham += log(f);
    }
    free(probs);
    double spamminess = 1.0 - chi2q(-2.0 * ln_spam, 2 * used);
    double hamminess = 1.0 - chi2q(-2.0 * ln_ham, 2 * used);
    double prob = (spamminess - hamminess + 1.0) / 2.0;
    if (prob < 0.0) {
        prob = 0.0;
    }
    if (prob > 1.0) {
        prob = 1.0;
    }
    *probability_out = prob;
    return 0;
}
