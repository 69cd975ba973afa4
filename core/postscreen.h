/*
 * core/postscreen.h - the screening of port 25 clients before the banner,
 * after Postfix's postscreen: an access list of networks always allowed or
 * refused, a memory of clients seen misbehaving (refused) or behaving
 * (no more tests), a per-address connection rate limit, and the greet
 * wait, during which a client that talks before the banner gives itself
 * away as a bot.
 *
 * This is the policy only: it parses, decides and remembers (through the
 * key-value store, core/kv), and does no I/O of its own; the SMTP listener
 * holds the banner, runs the timer and sends the replies. Concurrent
 * connections per address are core/ip_limit's, counted at accept.
 * Any thread (the kv store is thread-safe, the rest is read-only).
 * Limits: POSTSCREEN_ACCESS_MAX entries (core/limits.h).
 */
#ifndef TOASTER_CORE_POSTSCREEN_H
#define TOASTER_CORE_POSTSCREEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/kv.h"
#include "core/limits.h"

/* A client address, IPv4-mapped IPv6 already turned into IPv4. */
struct postscreen_addr {
    uint8_t family; /* 4 or 6 */
    uint8_t bytes[16];
};

struct postscreen_access_entry {
    struct postscreen_addr network;
    uint8_t                prefix_bits;
    bool                   is_permit;
};

/* postscreen_access in order: the first entry that contains the client
 * decides. */
struct postscreen_access {
    struct postscreen_access_entry entries[POSTSCREEN_ACCESS_MAX];
    size_t                         count;
};

enum postscreen_access_action {
    POSTSCREEN_ACCESS_NONE,
    POSTSCREEN_ACCESS_PERMIT,
    POSTSCREEN_ACCESS_REJECT,
};

enum postscreen_verdict {
    POSTSCREEN_PASS,   /* banner at once */
    POSTSCREEN_PERMIT, /* allowlisted: banner at once, no test ever */
    POSTSCREEN_REJECT, /* 554 5.7.1, close */
    POSTSCREEN_LIMIT,  /* 421 4.7.0, close */
    POSTSCREEN_TEST,   /* hold the banner greet_wait_ms: pregreet or pass */
};

/* Why, for the log line ("postscreen: PASS OLD [192.0.2.1]"). */
enum postscreen_reason {
    POSTSCREEN_REASON_OFF,         /* nothing configured applied: plain PASS */
    POSTSCREEN_REASON_ALLOWLISTED, /* postscreen_access permit */
    POSTSCREEN_REASON_DENYLISTED,  /* postscreen_access reject */
    POSTSCREEN_REASON_BAD_OLD,     /* remembered bad (pregreet) */
    POSTSCREEN_REASON_RATE,        /* over postscreen_rate_limit */
    POSTSCREEN_REASON_PASS_OLD,    /* remembered good */
    POSTSCREEN_REASON_NEW,         /* unknown: the greet wait decides */
};

struct postscreen_config {
    uint32_t greet_wait_ms; /* 0: no greet wait */
    uint32_t bad_ttl_s;     /* how long a pregreeter stays refused */
    uint32_t good_ttl_s;    /* how long a client that waited skips the wait */
    uint32_t rate_limit;    /* connections per minute per address; 0: no limit */
};

struct postscreen_decision {
    enum postscreen_verdict verdict;
    enum postscreen_reason  reason;
    uint64_t                rate_count; /* connections this minute, when counted */
    int                     kv_error;   /* a store error met (treated as a miss), or 0 */
};

struct postscreen;

/* Parse an address as the reactor prints it ("192.0.2.1", "IPv6:2001:db8::1")
 * or bare ("2001:db8::1"). IPv4-mapped IPv6 becomes IPv4. Returns 0 or
 * -EINVAL. */
int postscreen_addr_parse(const char *text, struct postscreen_addr *out);

/* Append the entries in text to *access. Entries are separated by commas
 * or newlines; each is "NETWORK ACTION": NETWORK an IPv4 or IPv6 address,
 * optionally "/bits" (no host bits may be set), ACTION "permit" or
 * "reject" (any case); '#' starts a comment to the end of the line. Returns
 * 0, or -EINVAL with the reason in err (entries appended before the bad
 * one stay). */
int postscreen_access_parse(const char *text, struct postscreen_access *access, char *err,
                            size_t err_bytes);

/* The value of the postscreen_access key: "" (no list), a path starting
 * with '/' (a file in the format above, read now), or the entries inline.
 * Replaces *access. Returns 0, or -EINVAL / -errno with the reason in err.
 * Blocking file read: start-up only. */
int postscreen_access_load(const char *value, struct postscreen_access *access, char *err,
                           size_t err_bytes);

/* The first entry containing addr decides. */
enum postscreen_access_action postscreen_access_match(const struct postscreen_access *access,
                                                      const struct postscreen_addr *addr);

/* Make the policy. access_value as postscreen_access_load takes it; kv is
 * borrowed and must outlive the policy. Returns 0 and sets *out, -EINVAL
 * (with err) or -ENOMEM. */
int postscreen_create(const struct postscreen_config *config, const char *access_value,
                      struct kv *kv, struct postscreen **out, char *err, size_t err_bytes);
void postscreen_destroy(struct postscreen **postscreen);

/* Whether the policy can do anything at all (a greet wait, a rate limit or
 * an access list). When false, every decision is a plain PASS. */
bool postscreen_is_active(const struct postscreen *postscreen);

/* Decide on a new connection from client (text as postscreen_addr_parse
 * takes it). Counts the connection for the rate limit. In order: the
 * access list; a remembered bad client; the rate limit; a remembered good
 * client; then TEST with a greet wait, else PASS. An address that does not
 * parse, or a store error, is decided as unknown (never refused for it). */
struct postscreen_decision postscreen_decide(struct postscreen *postscreen, const char *client);

/* The client talked before the banner: remember it as bad for bad_ttl_s.
 * Returns 0 or the store's -errno. */
int postscreen_pregreet(struct postscreen *postscreen, const char *client);

/* The client waited out the greet wait quietly: remember it as good for
 * good_ttl_s. Returns 0 or the store's -errno. */
int postscreen_passed(struct postscreen *postscreen, const char *client);

const struct postscreen_config *postscreen_config(const struct postscreen *postscreen);

/* "ALLOWLISTED", "DENYLISTED", "BAD OLD", "RATE", "PASS OLD", "PASS NEW" ("" for OFF). */
const char *postscreen_reason_name(enum postscreen_reason reason);

/* The reply line (CRLF included) for a REJECT or LIMIT verdict, or for a
 * pregreet (verdict TEST), into out. client is shown in brackets,
 * hostname leads the 421. Returns the length (truncated to out_bytes - 1). */
size_t postscreen_reply(enum postscreen_verdict verdict, const char *client, const char *hostname,
                        char *out, size_t out_bytes);

#endif
