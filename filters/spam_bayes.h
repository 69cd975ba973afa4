/*
 * filters/spam_bayes.h - the statistical classifier of the spam scorer:
 * words of a message become tokens, learning counts them per class (spam,
 * ham) in the key-value store, and classifying combines the tokens'
 * probabilities with Robinson's f(w) and Fisher's chi-square, as
 * SpamAssassin and Rspamd do.
 *
 * Store layout (core/kv.h, every key under 64 bytes, no expiry):
 *   bayes:s:<16 hex>   spam count of a token (64-bit FNV-1a of the token)
 *   bayes:h:<16 hex>   ham count of a token
 *   bayes:learns:s     messages learned as spam (and :h as ham)
 *   bayes:m:<32 hex>   "s" or "h": this message (spam_message digest) was
 *                      learned, and as what - the double-learn guard
 * A store that answers -EAGAIN makes classification say nothing and
 * learning fail with -EAGAIN (a learn cut short may have counted part of
 * its tokens; relearning the message later is safe: the guard key is
 * written last).
 *
 * Runs on workers (classify) and wherever the lead runs `toasterctl learn`
 * (learn). Limits: SPAM_TOKENS_MAX tokens per message, SPAM_TOKEN_BYTES_MAX
 * bytes per token, SPAM_BAYES_TOKENS_USED_MAX tokens combined.
 */
#ifndef TOASTER_FILTERS_SPAM_BAYES_H
#define TOASTER_FILTERS_SPAM_BAYES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"
#include "filters/spam_message.h"

#define SPAM_BAYES_MIN_LEARNS_DEFAULT 200u /* Rspamd's min_learns */
#define SPAM_BAYES_MIN_TOKENS 11u          /* Rspamd's min_tokens */
#define SPAM_BAYES_TOKENS_USED_MAX 150u    /* SpamAssassin's N_SIGNIFICANT_TOKENS */

/* The distinct tokens of a message (words of the Subject and of the
 * text, lower-cased, 3..SPAM_TOKEN_BYTES_MAX bytes, plus a few meta tokens
 * such as the From domain and link domains) as 64-bit hashes, at most cap
 * (<= SPAM_TOKENS_MAX). Returns how many were written. */
size_t spam_bayes_tokens(const struct spam_message *message, uint64_t *tokens_out, size_t cap);

/* Learn an analysed message as spam or ham. Returns 0, -EALREADY (this
 * message was learned as this class already; nothing changes), -ENODATA
 * (no tokens), -EAGAIN (store unavailable) or another kv error. A message
 * learned as the other class before is unlearned from it first. */
int spam_bayes_learn_message(struct kv *kv, const struct spam_message *message, bool is_spam);

/* The same from raw message bytes, or from a file descriptor (read from
 * offset 0, at most SPAM_LEARN_BYTES_MAX bytes; -errno of pread, -ENOMEM). */
int spam_bayes_learn(struct kv *kv, const char *msg, size_t len, bool is_spam);
int spam_bayes_learn_fd(struct kv *kv, int fd, bool is_spam);

/* Messages learned per class (0 when the store has none). Returns 0 or a
 * kv error (-EAGAIN). */
int spam_bayes_learn_counts(struct kv *kv, uint64_t *spam_out, uint64_t *ham_out);

/* Spam probability of an analysed message, 0..1. Returns 0 and sets
 * *probability_out, -ENODATA when either class has fewer than min_learns
 * messages learned or fewer than SPAM_BAYES_MIN_TOKENS of the message's
 * tokens carry evidence, or -EAGAIN (store unavailable). */
int spam_bayes_classify(struct kv *kv, const struct spam_message *message, uint32_t min_learns,
                        double *probability_out);

#endif
