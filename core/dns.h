/*
 * core/dns.h - the resolver behind struct dns_source (core/dns_answer.h):
 * one thread running c-ares, a bounded answer cache, the override file,
 * and batches - the set of questions one message's filter run asks.
 *
 * How a filter uses it, on a worker:
 *
 *     struct dns_batch *batch;              // one per message
 *     dns_batch_create(resolver, &batch);
 *     struct dns_source source = dns_batch_source(batch);
 *     ... run the filter with &source; it gets -EINPROGRESS for answers
 *     ... not here yet and gives up this run
 *     if (dns_batch_wait(batch, rerun, job))  // true: ready(job) comes later
 *         return;                           // rerun the filter when it does
 *     ... the run had every answer it asked for: use the verdict
 *     dns_batch_destroy(&batch);
 *
 * A question is answered, in this order, by the batch itself (a name it
 * asked before: the rerun sees what the first run saw), the override file,
 * the cache, or a query. Questions asked by several batches at once share
 * one query. The resolver thread never runs filter code: ready() is called
 * on it and should only hand the job back to a worker.
 *
 * Limits: DNS_BATCH_QUESTIONS_MAX distinct questions per batch (more get a
 * TEMPFAIL answer, see dns_batch_lookup), DNS_INFLIGHT_MAX queries in
 * flight (more get a TEMPFAIL answer), DNS_SERVERS_MAX servers, the cache's
 * entry and byte bounds from the configuration.
 */
#ifndef TOASTER_CORE_DNS_H
#define TOASTER_CORE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/dns_answer.h"
#include "core/dns_cache.h"

/* Distinct questions one batch may pin. A filter run asking more is broken
 * or attacked (SPF allows 10 DNS-querying mechanisms, RFC 7208 4.6.4). */
#define DNS_BATCH_QUESTIONS_MAX 64

/* Queries in flight at once, all batches together. */
#define DNS_INFLIGHT_MAX 1024

/* Servers in the `servers` list. */
#define DNS_SERVERS_MAX 8

/* Defaults and ceilings of the configuration below. */
#define DNS_TIMEOUT_MS_DEFAULT 2000
#define DNS_TIMEOUT_MS_CEILING 30000
#define DNS_TRIES_DEFAULT 2
#define DNS_TRIES_CEILING 5
#define DNS_CACHE_ENTRIES_DEFAULT 10000
#define DNS_CACHE_BYTES_DEFAULT (8u * 1024 * 1024)
#define DNS_TTL_MAX_S_DEFAULT 86400
#define DNS_NEGATIVE_TTL_MAX_S_DEFAULT 900

struct dns_config {
    const char  *servers;            /* "ip[:port],[ip6]:port,..."; NULL or "": resolv.conf */
    uint32_t     timeout_ms;         /* first try; c-ares doubles it per round of servers */
    uint32_t     tries;              /* rounds over the servers */
    uint32_t     cache_entries;      /* bound of the answer cache */
    size_t       cache_bytes;        /* bound of the bytes of cached answers */
    uint32_t     ttl_max_s;          /* positive answers are kept at most this long */
    uint32_t     negative_ttl_max_s; /* NXDOMAIN and NODATA at most this long */
    const char  *override_file;      /* NULL or "": none (see core/dns_zone.h) */
    dns_clock_fn clock;              /* NULL: CLOCK_MONOTONIC; tests inject one */
    void        *clock_arg;
};

/* Counters for /metrics; each is read atomically, the set is not a snapshot. */
struct dns_stats {
    uint64_t queries_sent;     /* questions handed to c-ares */
    uint64_t queries_shared;   /* lookups that joined a query already in flight */
    uint64_t cache_hits;       /* questions the cache answered */
    uint64_t cache_misses;     /* questions that started a query (none in flight to join) */
    uint64_t override_answers; /* questions the override file answered */
    uint64_t timeouts;         /* queries that ended in a timeout */
    uint64_t tempfails;        /* answers TEMPFAIL for any reason, timeouts included */
    uint64_t refused;          /* questions over DNS_BATCH_QUESTIONS_MAX or DNS_INFLIGHT_MAX */
};

struct dns_resolver;
struct dns_batch;

/* Fill config with the defaults above (servers and override_file NULL). */
void dns_config_defaults(struct dns_config *config);

/* Check config, read the override file, set up c-ares (reading
 * /etc/resolv.conf when servers is empty) and start the resolver thread.
 * Returns 0 and sets *resolver_out, or -EINVAL (a value out of range, a bad
 * server list or override file: error_out says which, naming the line),
 * -ENOMEM, or another -errno (thread, eventfd, c-ares set-up). */
int dns_resolver_create(const struct dns_config *config, struct dns_resolver **resolver_out,
                        char *error_out, size_t error_bytes);

/* Stop the thread (queries still in flight are answered TEMPFAIL first,
 * dns_resolve callbacks included), free everything and NULL *resolver.
 * Every batch made by dns_batch_create must be destroyed before. */
void dns_resolver_destroy(struct dns_resolver **resolver);

/* Read the override file at path (NULL or "": none) and put it in place of
 * the current one for the questions asked from now on; answers already
 * pinned stay. On error the current one stays. Returns 0, or as
 * dns_zone_load with the message in error_out. Any thread. */
int dns_resolver_load_override(struct dns_resolver *resolver, const char *path,
                               char *error_out, size_t error_bytes);

/* The counters now. Any thread. */
void dns_resolver_stats(const struct dns_resolver *resolver, struct dns_stats *stats_out);

/* A new, empty batch. Returns 0 and sets *batch_out, or -ENOMEM. The caller
 * owns it; one thread at a time may use it (the resolver thread's updates
 * are locked). */
int dns_batch_create(struct dns_resolver *resolver, struct dns_batch **batch_out);

/* The door a filter is given (see core/dns_answer.h); valid while the
 * batch lives. */
struct dns_source dns_batch_source(struct dns_batch *batch);

/* What dns_source_lookup does: 0 and *answer_out (valid until the batch is
 * reset or destroyed), -EINPROGRESS (a query is out, or joined), or
 * -EINVAL for an invalid name (no query). The batch's
 * DNS_BATCH_QUESTIONS_MAX+1th distinct question, and a question that
 * finds DNS_INFLIGHT_MAX queries in flight, get a TEMPFAIL answer (not an
 * error: filters map it to their temperror, and the rerun, asking the same
 * questions in the same order, gets the same). */
int dns_batch_lookup(struct dns_batch *batch, enum dns_type type, const char *name,
                     const struct dns_answer **answer_out);

/* Questions still waiting for their answers. */
uint32_t dns_batch_pending(struct dns_batch *batch);

/* If questions are pending, arrange for ready(arg) to be called exactly
 * once, on the resolver thread, when the last one is answered (timeouts
 * and failures are answers too), and return true. Return false when
 * nothing is pending (ready is not called). At most one wait may be armed
 * at a time. A reset or destroy before ready runs cancels it; ready must
 * not touch the batch itself, it may run while the batch is reset. */
bool dns_batch_wait(struct dns_batch *batch, void (*ready)(void *arg), void *arg);

/* Forget every question and answer (unpinning them) and cancel a wait, so
 * the batch can serve the next message. Queries in flight go on and fill
 * the cache. */
void dns_batch_reset(struct dns_batch *batch);

/* Reset, free, and NULL *batch. NULL is fine. */
void dns_batch_destroy(struct dns_batch **batch);

/* One question for code that is not a filter run (the reactor, the
 * outbound agent): done(arg, answer) is called exactly once, with an
 * answer valid only during the call (copy what is needed). Returns 0 when
 * done has already been called, on this thread, before returning (the
 * answer was at hand: override file, cache, or a bound reached: TEMPFAIL),
 * -EINPROGRESS when it will be called on the resolver thread, -EINVAL for
 * an invalid name or -ENOMEM (done is not called). At shutdown, pending
 * questions are answered TEMPFAIL before dns_resolver_destroy returns. */
int dns_resolve(struct dns_resolver *resolver, enum dns_type type, const char *name,
                void (*done)(void *arg, const struct dns_answer *answer), void *arg);

#endif
