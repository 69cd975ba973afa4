/*
 * filters/spam_ratelimit.h - message rate limits per envelope sender, per
 * client IP address and per recipient, counted in the key-value store
 * with fixed windows (kv_incr with a TTL): the (count+1)th message inside
 * a window is soft-rejected (451 4.7.1) until the window ends.
 *
 * Configuration form: "COUNT/WINDOW" with WINDOW a number and a unit
 * s, m, h or d ("100/1h"); "0" or "off" turns a limit off. A store that
 * answers -EAGAIN limits nothing (fail open).
 */
#ifndef TOASTER_FILTERS_SPAM_RATELIMIT_H
#define TOASTER_FILTERS_SPAM_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"

struct spam_rate {
    uint32_t count;    /* messages allowed per window; 0: no limit */
    uint32_t window_s; /* 1 .. 30 days */
};

enum spam_rate_kind {
    SPAM_RATE_SENDER = 's',
    SPAM_RATE_IP = 'i',
    SPAM_RATE_RCPT = 'r',
};

/* Parse "100/1h", "0" or "off". Returns 0 or -EINVAL. */
int spam_ratelimit_parse(const char *text, struct spam_rate *rate_out);

/* Count one message for subject (a sender or recipient address, or the
 * client address in text form; case is ignored) and say whether it is
 * over the limit. Returns 0 with *is_over_out set, or 0 with false when
 * the limit is off or the store fails. */
int spam_ratelimit_hit(struct kv *kv, enum spam_rate_kind kind, const struct spam_rate *rate,
                       const char *subject, bool *is_over_out);

#endif
