/*
 * filters/spam_greylist.h - greylisting: the first message of a triplet
 * (client network, envelope sender, recipient) is deferred with a 451;
 * a retry after the delay and within the retry window passes, and the
 * triplet is then remembered as good, so later messages pass at once.
 *
 * The client network is the /24 of an IPv4 address and the /64 of an IPv6
 * address, so a sender's pool of outgoing servers counts as one (as
 * postgrey --lookup-by-subnet and Rspamd do). Defaults as postgrey: delay
 * 300 s, retry window 2 days, good triplets kept 35 days after their last
 * message. State lives in the key-value store under "grey:<16 hex>"; the
 * clock is the caller's (seconds), so tests inject it. A store that
 * answers -EAGAIN lets the message pass (fail open, never defer forever).
 */
#ifndef TOASTER_FILTERS_SPAM_GREYLIST_H
#define TOASTER_FILTERS_SPAM_GREYLIST_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/kv.h"

#define SPAM_GREYLIST_DELAY_S_DEFAULT 300u
#define SPAM_GREYLIST_RETRY_WINDOW_S_DEFAULT (2u * 24 * 3600)
#define SPAM_GREYLIST_PASS_TTL_S_DEFAULT (35u * 24 * 3600)

struct spam_greylist_config {
    uint32_t delay_s;        /* a retry must wait this long after the first try */
    uint32_t retry_window_s; /* ...and come within this long after it */
    uint32_t pass_ttl_s;     /* a good triplet is kept this long after its last pass */
};

/* The client: family AF_INET or AF_INET6 with the address in addr4/addr6. */
struct spam_client {
    int             family;
    struct in_addr  addr4;
    struct in6_addr addr6;
};

/* Parse a client address in text form ("192.0.2.1", "2001:db8::1",
 * "::ffff:192.0.2.1" becomes IPv4). Returns 0 or -EINVAL. */
int spam_client_from_text(const char *text, struct spam_client *client_out);

/* Check one triplet at now_s. Returns 0 (pass), 1 (defer: *wait_s_out is
 * how many more seconds the sender must wait, at least 1), -EINVAL (no
 * usable client address) or, when the store fails, 0 with nothing
 * remembered. sender "" is the null sender; case is ignored. */
int spam_greylist_check(struct kv *kv, const struct spam_greylist_config *config,
                        const struct spam_client *client, const char *sender,
                        const char *recipient, uint64_t now_s, uint32_t *wait_s_out);

#endif
