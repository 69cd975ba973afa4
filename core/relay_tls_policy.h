/*
 * core/relay_tls_policy.h - what TLS the delivery agent must use with each
 * hop of a route: the configured level (smtp_tls_security,
 * smtp_tls_policy_file), raised or narrowed by DANE (RFC 7672: TLSA
 * records under DNSSEC) and by MTA-STS (RFC 8461: a policy the recipient
 * domain publishes over HTTPS).
 *
 * Runs on a worker, after store/route resolved the group's hops, and is
 * restartable the same way: DNS comes through a struct dns_source, and
 * while answers are missing relay_tls_policy_resolve() returns
 * -EINPROGRESS having asked every question it can know it needs; the
 * caller runs it again with the same request when they are in. Only once
 * every answer is in does it fetch an MTA-STS policy over HTTPS (blocking,
 * bounded by the fetch timeout: core/mta_sts_fetch.h). Policies are cached
 * in memory per domain (a mutex; at most cache_max domains) until their
 * max_age, and refetched when the "_mta-sts" TXT id changes (RFC 8461 5.1).
 *
 * DANE, when it applies to a hop, wins over MTA-STS (RFC 8461 section 2).
 * Limits: RELAY_TLS_POLICY_TLSA_MAX records per hop, each at most
 * RELAY_TLS_POLICY_TLSA_DATA_BYTES (digests; a longer "full" record is
 * not kept), MTA_STS_POLICY_BYTES_MAX of policy, RELAY_TLS_POLICY_CACHE_CEILING
 * cached domains.
 */
#ifndef TOASTER_CORE_RELAY_TLS_POLICY_H
#define TOASTER_CORE_RELAY_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"
#include "core/tls.h"
#include "store/route.h"

/* The agent's TLS levels. This is the enum core/relay_internal.h used to
 * define (same first four values, same order); it lives here so this
 * module builds and is tested without the agent. */
enum relay_tls_level {
    RELAY_TLS_NONE,      /* clear text */
    RELAY_TLS_MAY,       /* STARTTLS when offered, any certificate */
    RELAY_TLS_ENCRYPT,   /* STARTTLS required, any certificate */
    RELAY_TLS_VERIFY,    /* STARTTLS required, chain + the hop's name (also MTA-STS) */
    RELAY_TLS_DANE,      /* configured: DANE where DNSSEC and usable TLSA say so, else may */
    RELAY_TLS_DANE_ONLY, /* configured: DANE or no delivery; per hop: verify by hop->tlsa */
};

/* "none", "may", "encrypt", "verify" (or Postfix's "secure"), "dane",
 * "dane-only" into *level_out. Returns 0, or -EINVAL. */
int relay_tls_level_parse(const char *text, enum relay_tls_level *level_out);
/* The level's name, as relay_tls_level_parse reads it. */
const char *relay_tls_level_name(enum relay_tls_level level);

#define RELAY_TLS_POLICY_TLSA_MAX 8u          /* usable records kept per hop */
#define RELAY_TLS_POLICY_TLSA_DATA_BYTES 64u  /* SHA2-512 */
#define RELAY_TLS_POLICY_REASON_BYTES 160u
#define RELAY_TLS_POLICY_CACHE_DEFAULT 10000u
#define RELAY_TLS_POLICY_CACHE_CEILING 1000000u
/* A failed policy fetch is not tried again for the same id before this. */
#define RELAY_TLS_POLICY_FETCH_RETRY_S 300

struct relay_tls_request {
    const char *domain;               /* recipient domain, lower case */
    enum relay_tls_level level;       /* relay_tls_level_for(domain): the configured level */
    bool is_mta_sts;                  /* smtp_mta_sts */
    const struct route_result *route; /* status ROUTE_OK */
    int64_t now;                      /* unix seconds */
};

/* One TLSA record kept for a hop (a copy: the hop may be copied). */
struct relay_tls_tlsa {
    uint8_t usage;
    uint8_t selector;
    uint8_t matching_type;
    uint8_t len;
    uint8_t data[RELAY_TLS_POLICY_TLSA_DATA_BYTES];
};

/* What the session must do with route->hops[i]. */
struct relay_tls_hop {
    /* NONE, MAY, ENCRYPT, VERIFY, or DANE_ONLY (= verify by tlsa[], with
     * TLS_VERIFY_DANE; the name is the hop's host). Never RELAY_TLS_DANE. */
    enum relay_tls_level level;
    bool is_skipped;             /* never connect to this hop (reason says why) */
    bool is_mta_sts;             /* level raised to VERIFY by an MTA-STS enforce policy */
    size_t tlsa_count;           /* when level is DANE_ONLY: 1..RELAY_TLS_POLICY_TLSA_MAX */
    struct relay_tls_tlsa tlsa[RELAY_TLS_POLICY_TLSA_MAX];
    char reason[RELAY_TLS_POLICY_REASON_BYTES]; /* for the log; "" when nothing to say */
};

/* The hop's records as core/tls.h takes them, pointing into hop (valid
 * while hop is). Returns the count (hop->tlsa_count). */
size_t relay_tls_hop_tlsa(const struct relay_tls_hop *hop, struct tls_tlsa out[TLS_TLSA_MAX]);

/* What to do for request->route's hops. hops_out has
 * request->route->hop_count elements, index for index.
 * Returns:
 *   0            hops_out filled (some hops may be is_skipped, not all);
 *   -EINPROGRESS DNS answers missing (questions are out): run it again
 *                with the same request once the caller's batch has them;
 *   -EAGAIN      defer the whole group with 451 4.7.5 and reason_out
 *                (the text after the codes): every hop is skipped (TLSA
 *                lookup failure (RFC 7672 2.1.1), dane-only without usable
 *                TLSA, MTA-STS enforce with no matching MX (RFC 8461 4.1));
 *   -ENOMEM      defer the whole group with 451 4.3.0 and reason_out.
 * Blocks only for the MTA-STS HTTPS fetch (bounded by the fetch
 * timeout), and only on the run that has every DNS answer. Any thread;
 * needs relay_tls_policy_start() for MTA-STS (without it, is_mta_sts is
 * treated as false). */
int relay_tls_policy_resolve(const struct relay_tls_request *request,
                             const struct dns_source *source, struct relay_tls_hop *hops_out,
                             char *reason_out, size_t reason_bytes);

/* An address of mta-sts.<domain>, as resolved through the request's
 * dns_source, for the fetch. */
struct relay_tls_fetch_address {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    };
};
/* How relay_tls_policy_resolve() fetches a policy: the real fetch is
 * mta_sts_fetch() (core/mta_sts_fetch.h); tests put their own. fetch
 * returns 0 with the body in body[0..*body_len_out), or -errno with the
 * reason in err. */
struct relay_tls_policy_settings {
    struct tls_client *client;   /* borrowed, for the fetch (the agent's: smtp_tls_ca_file) */
    uint32_t fetch_timeout_ms;   /* mta_sts_fetch_timeout: connect + TLS + read */
    uint16_t port;               /* mta_sts_port: 443 */
    size_t cache_max;            /* mta_sts_cache_max: domains (at most the ceiling) */
    /* NULL: mta_sts_fetch(). */
    int (*fetch)(void *ctx, const char *domain, const struct relay_tls_fetch_address *addresses,
                 size_t address_count, char *body, size_t body_max, size_t *body_len_out,
                 char *err, size_t err_bytes);
    void *fetch_ctx;
};

/* Start the MTA-STS cache (main thread, before workers call resolve).
 * Returns 0, -EINVAL (cache_max 0 or over the ceiling, no client and no
 * fetch), -EALREADY, or -ENOMEM. */
int relay_tls_policy_start(const struct relay_tls_policy_settings *settings);
/* Free the cache (after the workers stopped). Safe without start. */
void relay_tls_policy_stop(void);

/* Domains in the cache, and fetches done since start (for tests, stats). */
size_t relay_tls_policy_cache_count(void);
uint64_t relay_tls_policy_fetch_count(void);

#endif
