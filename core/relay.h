/*
 * core/relay.h - the outbound delivery agent: takes the entries of the
 * outbound queue (store/queue.h) and delivers them, by SMTP to the
 * destinations' MX hosts (or the configured next hops), or into a local
 * mailbox when a generated message (a bounce) is for one of our users.
 *
 * It runs on one reactor (the first), as that reactor's hook: the
 * scheduler (which entry is due, which destination may take another
 * session), the SMTP client sessions (core/relay_session.c, connections
 * opened with reactor_connect) and the bookkeeping all live on that one
 * thread, so none of it takes a lock. Everything that blocks goes to the
 * worker pool (core/relay_jobs.c): taking an entry's lock and loading it,
 * mapping its message, resolving routes (DNS), writing the results
 * (store/queue_outcome), local delivery. Other threads only knock:
 * relay_notify_queued() (the committer, a new entry is durable) and
 * relay_flush() (the control thread, toasterctl queue flush).
 *
 * An entry is attempted as a whole: its lock is held from the load until
 * the results are written, every due recipient is grouped by destination,
 * the groups go out in parallel, and each recipient gets exactly one
 * outcome per attempt (or none when it was not tried). Mail is never
 * considered delivered before the remote server's 250 to the end of data;
 * a crash after that 250 and before the results are written delivers the
 * message again on restart (a duplicate, never a loss: RFC 5321 6.1).
 */
#ifndef TOASTER_CORE_RELAY_H
#define TOASTER_CORE_RELAY_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct reactor;
struct dns_resolver;
struct conn_handler;
struct dkim_keys;

/* The session handler; main.c registers it with
 * reactor_client_handler_register() before the reactors start. */
const struct conn_handler *relay_session_handler(void);

/* Set up the agent (main thread, after the reactors started): open the
 * queue, load the routing table, the TLS policy and the client
 * credentials, and hook the scheduler into reactor. dns NULL defers every
 * route that needs DNS. dkim_keys (may be NULL) sign outgoing messages of
 * their From: domains that are not signed yet. Scans the queue on its
 * first run. Returns 0, or -errno with the reason logged. */
int relay_start(const struct config *config, struct reactor *reactor, struct dns_resolver *dns,
                const struct dkim_keys *dkim_keys);

/* Any thread, never blocks: the entry id is durable in the queue now. */
void relay_notify_queued(const char *id);

/* Any thread, never blocks: attempt entry id (NULL: every entry) now,
 * whatever its schedule. Returns 0, or -ESRCH when the agent does not run. */
int relay_flush(const char *id);

/* The control command answers ("queue-flush" and "queue-flush ID"). */
int relay_control_flush_all(void *arg, char *out, size_t out_bytes);
int relay_control_flush_one(void *arg, const char *argument, char *out, size_t out_bytes);

/* Main thread, after the reactors stopped: free what the agent holds. */
void relay_stop(void);

/* What the agent publishes for the metrics (core/metrics.c): gauges of
 * the entries it knows, refreshed by the agent at most once a second
 * after a change, and counters since start. Written by the agent's
 * reactor only; relay_metrics_read() from any thread, at any time (all
 * zero when the agent does not run). */
struct relay_metrics {
    uint64_t entries;            /* queue entries the agent knows of (held ones too) */
    uint64_t entries_active;     /* being attempted now */
    uint64_t entries_deferred;   /* attempted, waiting for their next time (held ones not) */
    uint64_t entries_held;       /* found held at their last load (toasterctl queue hold): a
                                  * hold shows at the entry's next load (its attempt, a
                                  * flush, or within queue_retry_min), a release or delete
                                  * within queue_retry_min (at once with a flush) */
    uint64_t oldest_arrival_s;   /* unix seconds of the oldest known entry not held; 0: none */
    uint64_t sessions_open;      /* outbound SMTP sessions */
    uint64_t attempts_total;     /* attempts started (an entry loaded for delivery; one
                                  * that finds it locked or nothing due counts too) */
    uint64_t rcpt_delivered;     /* recipients delivered (relayed, or into a local mailbox) */
    uint64_t rcpt_deferred;      /* recipient attempts that ended deferred */
    uint64_t rcpt_bounced;       /* recipients failed for good (a DSN) */
};
void relay_metrics_read(struct relay_metrics *out);

#endif
