/*
 * core/relay.c - the delivery agent's scheduler (see core/relay.h): which
 * queue entries are due, their attempts through the phases of
 * core/relay_jobs.c, and the destinations, each with its recipients
 * waiting for a session and its sessions (core/relay_session.c) within the
 * concurrency, rate and session limits. Runs as a hook of one reactor,
 * on its thread; other threads only leave notes in the inbox.
 *
 * Entries are known by id in a table; when each is due lives in a
 * min-heap (store/queue_schedule's queue_due), where a record whose time
 * no longer matches its entry's is stale and skipped. What is not in the
 * table (the heap was full, a note was lost) is found by the queue scan,
 * at start and every queue_retry_min. A held entry stays in the table,
 * marked held by the load that found it so, and is loaded again every
 * queue_retry_min: that is how a release or a delete by toasterctl (which
 * tells the daemon nothing but a flush) is learnt, as before, and how the
 * held gauge stays honest without reading any envelope for it.
 */
#define _GNU_SOURCE
#include "core/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/config.h"
#include "core/dns.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/reactor.h"
#include "core/relay_internal.h"
#include "core/stats.h"
#include "core/tls.h"
#include "store/dsn.h"
#include "store/recipients.h"

#define RELAY_ENTRY_BUCKETS 65536u
#define RELAY_DUE_CAPACITY (1u << 20)    /* entries scheduled in memory; more wait for a scan */
#define RELAY_INBOX_MAX (1u << 20)       /* notes between two hook runs; more: a scan */
#define RELAY_MAILBOXES_PER_RCPT 64u     /* local delivery: mailboxes one address becomes */
#define RELAY_SLOT_RETRY_MS 1000         /* no connection slot free: try again after */

struct relay relay_agent;

/* An entry the agent knows of. */
struct relay_entry {
    char                id[SPOOL_QUEUE_ID_BYTES];
    int64_t             due;        /* unix seconds; the heap record that matches is live */
    int64_t             arrival;    /* unix seconds: when accepted (known once loaded) */
    bool                is_tried;   /* an attempt ended and left it queued */
    bool                is_active;  /* an attempt is under way */
    bool                is_forced;  /* flushed: every pending recipient, now */
    bool                is_held;    /* its last load found it held (toasterctl queue hold) */
    struct relay_entry *bucket_next;
};

/* Notes from other threads. */
struct relay_inbox {
    pthread_mutex_t lock;
    char          (*ids)[SPOOL_QUEUE_ID_BYTES];
    size_t          count;
    size_t          capacity;
    bool            is_flush_all;
    bool            is_scan_wanted; /* the inbox overflowed */
};

/* The queue scan, on a worker. */
struct relay_scan {
    struct job job;
    char     (*ids)[SPOOL_QUEUE_ID_BYTES];
    size_t     count;
    size_t     capacity;
    int        rc;
};

static struct {
    bool                is_running;
    struct queue_due   *due;
    struct relay_entry *entries[RELAY_ENTRY_BUCKETS];
    size_t              entry_count;
    struct relay_inbox  inbox;
    bool                is_scan_running;
    int64_t             next_scan;      /* unix seconds */
    /* Attempts whose next job found the pool full: submitted again by the hook. */
    struct relay_attempt **resubmit;
    size_t              resubmit_count;
    size_t              resubmit_capacity;
    struct relay_scan  *scan_pending;   /* a scan job refused by the pool */
    struct reactor     *reactor;        /* set once the hook is; read by other threads */
    int64_t             gauges_at_ms;   /* when the entry gauges were last walked */
} agent = { .inbox = { .lock = PTHREAD_MUTEX_INITIALIZER } };

/* Published for the metrics (relay_metrics_read); this thread writes. */
static struct relay_metrics metrics;

#define RELAY_GAUGES_INTERVAL_MS 1000 /* the entry table is walked at most this often */

static void attempt_done(struct job *job, struct conn *conn);
static void attempt_submit(struct relay_attempt *attempt);

/* ---- small things ----------------------------------------------------------- */

static int64_t
now_s(void)
{
    return (int64_t)time(NULL);
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t
relay_random(void)
{
    /* xorshift64*: jitter and shuffling, not secrets. Worker threads call
     * it too, so the state moves by an atomic exchange loop. */
    uint64_t old = __atomic_load_n(&relay_agent.random_state, __ATOMIC_RELAXED);
    uint64_t next;
    do {
        next = old;
        next ^= next >> 12;
        next ^= next << 25;
        next ^= next >> 27;
    } while (!__atomic_compare_exchange_n(&relay_agent.random_state, &old, next, false,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return next * 0x2545F4914F6CDD1DULL;
}

static uint32_t
key_hash(const char *key)
{
    return hash_fnv1a_string(key);
}

/* ---- entries ----------------------------------------------------------------- */

static struct relay_entry **
entry_slot(const char *id)
{
    struct relay_entry **slot = &agent.entries[key_hash(id) % RELAY_ENTRY_BUCKETS];
    while (*slot != NULL && strcmp((*slot)->id, id) != 0) {
        slot = &(*slot)->bucket_next;
    }
    return slot;
}

static void
entry_schedule(struct relay_entry *entry, int64_t due)
{
    entry->due = due;
    if (queue_due_push(agent.due, due, entry->id, 0) != 0) {
        /* The heap is full: the entry waits on disk for the next scan. */
        struct relay_entry **slot = entry_slot(entry->id);
        *slot = entry->bucket_next;
        free(entry);
        agent.entry_count--;
    }
}

/* Know of id, due at due (an entry already known keeps its time unless
 * due is earlier). */
static void
entry_track(const char *id, int64_t due, bool is_forced)
{
    if (!queue_id_is_valid(id)) {
        return;
    }
    struct relay_entry **slot = entry_slot(id);
    struct relay_entry *entry = *slot;
    if (entry == NULL) {
        entry = calloc(1, sizeof(*entry));
        if (entry == NULL) {
            log_warning("%s: no memory to schedule it; the next queue scan finds it", id);
            return;
        }
        memcpy(entry->id, id, sizeof(entry->id));
        entry->arrival = now_s(); /* until its load says better */
        *slot = entry;
        agent.entry_count++;
        entry->is_forced = is_forced;
        entry_schedule(entry, due);
        return;
    }
    entry->is_forced = entry->is_forced || is_forced;
    if (!entry->is_active && due < entry->due) {
        entry_schedule(entry, due);
    }
}

static void
entry_forget(const char *id)
{
    struct relay_entry **slot = entry_slot(id);
    struct relay_entry *entry = *slot;
    if (entry != NULL) {
        *slot = entry->bucket_next;
        free(entry);
        agent.entry_count--;
    }
}

/* ---- destinations ------------------------------------------------------------ */

static struct relay_dest *
dest_get(const char *key)
{
    struct relay *relay = &relay_agent;
    struct relay_dest **slot = &relay->buckets[key_hash(key) % RELAY_DEST_BUCKETS];
    while (*slot != NULL && strcmp((*slot)->key, key) != 0) {
        slot = &(*slot)->bucket_next;
    }
    if (*slot == NULL) {
        struct relay_dest *dest = calloc(1, sizeof(*dest));
        if (dest == NULL) {
            return NULL;
        }
        (void)snprintf(dest->key, sizeof(dest->key), "%s", key);
        *slot = dest;
    }
    return *slot;
}

/* Forget a destination that has nothing left (no session, nothing waiting). */
static void
dest_drop_if_empty(struct relay_dest *dest)
{
    if (dest->sessions > 0 || dest->waiting_head != NULL || dest->is_dirty ||
        dest->next_start_ms > now_ms()) {
        return; /* (a destination within its rate delay is remembered) */
    }
    struct relay *relay = &relay_agent;
    struct relay_dest **slot = &relay->buckets[key_hash(dest->key) % RELAY_DEST_BUCKETS];
    while (*slot != NULL && *slot != dest) {
        slot = &(*slot)->bucket_next;
    }
    ASSERT(*slot == dest);
    *slot = dest->bucket_next;
    free(dest);
}

void
relay_dest_kick(struct relay_dest *dest)
{
    if (!dest->is_dirty) {
        dest->is_dirty = true;
        dest->dirty_next = relay_agent.dirty_head;
        relay_agent.dirty_head = dest;
    }
    reactor_hook_wake(relay_agent.reactor);
}

static void
dest_push(struct relay_dest *dest, struct relay_group *group, bool is_front)
{
    group->dest = dest;
    group->next_waiting = NULL;
    if (dest->waiting_head == NULL) {
        dest->waiting_head = group;
        dest->waiting_tail = group;
    } else if (is_front) {
        group->next_waiting = dest->waiting_head;
        dest->waiting_head = group;
    } else {
        dest->waiting_tail->next_waiting = group;
        dest->waiting_tail = group;
    }
    dest->waiting_count++;
}

static struct relay_group *
dest_pop(struct relay_dest *dest)
{
    struct relay_group *group = dest->waiting_head;
    if (group != NULL) {
        dest->waiting_head = group->next_waiting;
        if (dest->waiting_head == NULL) {
            dest->waiting_tail = NULL;
        }
        group->next_waiting = NULL;
        dest->waiting_count--;
    }
    return group;
}

/* Whether the rate delay lets the destination start a message now; with
 * is_taking, the message starts (the next may start delay later). The
 * delay is between message starts, not connects: a session that is slow
 * to greet must not bunch messages up. */
static bool
dest_rate_check(struct relay_dest *dest, bool is_taking)
{
    uint32_t delay_ms = relay_agent.config->smtp_destination_rate_delay_ms;
    if (delay_ms == 0) {
        return true;
    }
    int64_t now = now_ms();
    if (now < dest->next_start_ms) {
        return false;
    }
    if (is_taking) {
        dest->next_start_ms = now + delay_ms;
    }
    return true;
}

bool
relay_dest_rate_take(struct relay_dest *dest)
{
    return dest_rate_check(dest, true);
}

void
relay_group_requeue(struct relay_group *group)
{
    ASSERT(group->dest != NULL);
    if (reactor_is_draining(relay_agent.reactor)) {
        group->dest = NULL;
        relay_group_done(group); /* untried: stays pending */
        return;
    }
    dest_push(group->dest, group, true);
    relay_dest_kick(group->dest);
}

struct relay_group *
relay_dest_take(struct relay_dest *dest, const struct relay_session *session)
{
    if (reactor_is_draining(relay_agent.reactor) || dest->waiting_head == NULL ||
        !relay_session_suits(session, dest->waiting_head) || !dest_rate_check(dest, true)) {
        return NULL; /* (one that does not suit waits for a session of its own) */
    }
    return dest_pop(dest);
}

static void group_fail_open(struct relay_group *group, enum queue_outcome_kind kind,
                            const char *reply);

/* Start what the destination's limits allow. Returns the milliseconds
 * until it should be looked at again (the rate delay, or no free
 * connection slot), 0 when nothing waits for time. */
static int64_t
dest_pump(struct relay_dest *dest)
{
    struct relay *relay = &relay_agent;
    const struct config *config = relay->config;
    while (dest->waiting_head != NULL && !reactor_is_draining(relay->reactor)) {
        if (dest->idle == NULL && (dest->sessions >= config->smtp_destination_concurrency_limit ||
                                   relay->sessions >= config->smtp_process_limit)) {
            break;
        }
        if (!dest_rate_check(dest, dest->idle != NULL)) {
            return dest->next_start_ms - now_ms();
        }
        if (dest->idle != NULL && !relay_session_suits(dest->idle, dest->waiting_head)) {
            /* Opened for a laxer TLS policy or another host: it goes, and
             * the group gets a session of its own. */
            struct relay_session *session = dest->idle;
            dest->idle = relay_session_next_idle(session);
            relay_session_quit(session);
            continue;
        }
        struct relay_group *group = dest_pop(dest);
        if (dest->idle != NULL) {
            struct relay_session *session = dest->idle;
            dest->idle = relay_session_next_idle(session);
            relay_session_give(session, group);
            continue;
        }
        int rc = relay_session_open(dest, group);
        if (rc == -EAGAIN) {
            /* No connection slot on the reactor: look again in a while
             * (a session of ours that ends kicks us sooner). */
            dest_push(dest, group, true);
            return RELAY_SLOT_RETRY_MS;
        }
        if (rc != 0) {
            group_fail_open(group, QUEUE_OUTCOME_DEFERRED,
                            group->last_error[0] != '\0' ? group->last_error
                                                         : "451 4.4.1 no host could be reached");
        }
    }
    return 0;
}

/* ---- results and groups ------------------------------------------------------- */

static const char *
kind_status(enum queue_outcome_kind kind)
{
    switch (kind) {
    case QUEUE_OUTCOME_DELIVERED:
        return "sent";
    case QUEUE_OUTCOME_RELAYED:
    case QUEUE_OUTCOME_PASSED_ON:
        return "sent";
    case QUEUE_OUTCOME_DEFERRED:
        return "deferred";
    case QUEUE_OUTCOME_FAILED:
        return "bounced";
    }
    return "?";
}

void
relay_result_set(struct relay_group *group, size_t rcpt_index, enum queue_outcome_kind kind,
                 const char *reply, const char *relay_text)
{
    struct relay_attempt *attempt = group->attempt;
    ASSERT(rcpt_index < attempt->entry.rcpt_count);
    struct relay_result *result = &attempt->results[rcpt_index];
    if (result->is_set) {
        return; /* the RCPT reply decided it already */
    }
    result->is_set = true;
    result->kind = kind;
    (void)queue_text_clean(reply, result->reply, sizeof(result->reply));
    (void)snprintf(result->remote_mta, sizeof(result->remote_mta), "%s",
                   relay_text != NULL ? relay_text : "");
    char *bracket = strchr(result->remote_mta, '[');
    if (bracket != NULL) {
        *bracket = '\0'; /* the name alone for the DSN's Remote-MTA */
    }
    char status[16];
    enum dsn_action action = kind == QUEUE_OUTCOME_FAILED     ? DSN_ACTION_FAILED
                             : kind == QUEUE_OUTCOME_DEFERRED ? DSN_ACTION_DELAYED
                                                              : DSN_ACTION_DELIVERED;
    (void)dsn_status(result->reply, action, status);
    log_info("%s: to=<%s>, relay=%s, delay=%lld, dsn=%s, status=%s (%s)", attempt->id,
             attempt->entry.rcpts[rcpt_index].address,
             relay_text != NULL && relay_text[0] != '\0' ? relay_text : "none",
             (long long)(now_s() - attempt->entry.arrival), status, kind_status(kind),
             result->reply);
}

/* Every recipient of the group without a result gets this one. */
static void
group_set_all(struct relay_group *group, enum queue_outcome_kind kind, const char *reply,
              const char *relay_text)
{
    for (size_t k = 0; k < group->rcpt_count; k++) {
        relay_result_set(group, group->rcpts[k], kind, reply, relay_text);
    }
}

static void
attempt_group_closed(struct relay_attempt *attempt)
{
    ASSERT(attempt->groups_open > 0);
    attempt->groups_open--;
    if (attempt->groups_open == 0) {
        attempt->phase = RELAY_PHASE_APPLY;
        attempt_submit(attempt);
    }
}

void
relay_group_done(struct relay_group *group)
{
    ASSERT(!group->is_done);
    group->is_done = true;
    struct relay_dest *dest = group->dest;
    group->dest = NULL;
    attempt_group_closed(group->attempt);
    if (dest != NULL) {
        relay_dest_kick(dest);
    }
}

static void
group_fail_open(struct relay_group *group, enum queue_outcome_kind kind, const char *reply)
{
    group_set_all(group, kind, reply, NULL);
    relay_group_done(group);
}

void
relay_group_retry(struct relay_group *group)
{
    const struct config *config = relay_agent.config;
    struct relay_dest *dest = group->dest;
    ASSERT(dest != NULL);
    if (reactor_is_draining(relay_agent.reactor)) {
        relay_group_done(group); /* stopping cut it short: untried, stays pending */
        return;
    }
    if (group->hop_next < group->route.hop_count &&
        group->sessions_tried < config->smtp_mx_session_limit) {
        dest_push(dest, group, true);
        relay_dest_kick(dest);
        return;
    }
    group_fail_open(group, QUEUE_OUTCOME_DEFERRED,
                    group->last_error[0] != '\0' ? group->last_error
                                                 : "451 4.4.1 no host could be reached");
}

/* ---- attempts -------------------------------------------------------------------- */

static void
attempt_free(struct relay_attempt *attempt)
{
    ASSERT(attempt->map == NULL && attempt->lock_fd < 0 && attempt->batch == NULL);
    if (attempt->local_mailboxes != NULL) {
        for (size_t i = 0; i < attempt->entry.rcpt_count; i++) {
            char **list = attempt->local_mailboxes[i];
            for (size_t m = 0; list != NULL && list[m] != NULL; m++) {
                free(list[m]);
            }
            free(list);
        }
        free(attempt->local_mailboxes);
    }
    if (attempt->groups != NULL && attempt->group_count > 0) {
        /* groups_make allocated the recipients' arrays in one piece each. */
        free(attempt->groups[0].rcpts);
        free(attempt->groups[0].client_rcpts);
    }
    for (size_t i = 0; attempt->groups != NULL && i < attempt->group_count; i++) {
        free(attempt->groups[i].tls_hops);
    }
    free(attempt->groups);
    free(attempt->results);
    free(attempt->dkim_fields);
    queue_entry_release(&attempt->entry);
    free(attempt);
}

static void
attempt_submit(struct relay_attempt *attempt)
{
    attempt->job.run = relay_job_run;
    attempt->job.done = attempt_done;
    if (reactor_job_submit(relay_agent.reactor, &attempt->job) == 0) {
        return;
    }
    /* The pool is full: the hook tries again. */
    if (agent.resubmit_count == agent.resubmit_capacity) {
        size_t capacity = agent.resubmit_capacity == 0 ? 64 : agent.resubmit_capacity * 2;
        struct relay_attempt **grown = realloc(agent.resubmit, capacity * sizeof(*grown));
        ASSERT(grown != NULL); /* bounded by RELAY_ATTEMPTS_MAX; tiny */
        agent.resubmit = grown;
        agent.resubmit_capacity = capacity;
    }
    agent.resubmit[agent.resubmit_count++] = attempt;
    reactor_hook_wake(relay_agent.reactor);
}

static void
attempt_start(struct relay_entry *entry)
{
    struct relay_attempt *attempt = calloc(1, sizeof(*attempt));
    if (attempt == NULL) {
        entry_schedule(entry, now_s() + 1);
        return;
    }
    memcpy(attempt->id, entry->id, sizeof(attempt->id));
    attempt->is_forced = entry->is_forced;
    attempt->lock_fd = -1;
    attempt->seed = relay_random();
    attempt->phase = RELAY_PHASE_LOAD;
    entry->is_active = true;
    entry->is_forced = false;
    relay_agent.attempts++;
    stats_add(&metrics.attempts_total, 1);
    attempt_submit(attempt);
}

/* The attempt is over: the entry's next time, the DSNs it made. */
static void
attempt_finish(struct relay_attempt *attempt, int64_t next_due)
{
    struct relay_entry *entry = *entry_slot(attempt->id);
    ASSERT(relay_agent.attempts > 0);
    relay_agent.attempts--;
    if (entry != NULL) {
        entry->is_active = false;
        entry->is_tried = true;
        entry->is_held = false; /* attempt_finish_held says otherwise */
        if (attempt->entry.arrival > 0) {
            entry->arrival = attempt->entry.arrival;
        }
        if (next_due == 0) {
            entry_forget(attempt->id);
        } else {
            entry_schedule(entry, entry->is_forced ? now_s() : next_due);
        }
    }
    attempt_free(attempt);
    reactor_hook_wake(relay_agent.reactor);
}

/* The load found the entry held: it is kept, counted as held, and loaded
 * again in queue_retry_min (or at a flush, or at the queue scan) to learn
 * whether it was released or deleted meanwhile. */
static void
attempt_finish_held(struct relay_attempt *attempt)
{
    char id[SPOOL_QUEUE_ID_BYTES];
    memcpy(id, attempt->id, sizeof(id));
    attempt_finish(attempt, now_s() + (int64_t)relay_agent.policy.retry_min_s);
    struct relay_entry *entry = *entry_slot(id); /* NULL when the heap was full */
    if (entry != NULL) {
        entry->is_held = true;
    }
}

/* Local groups: each recipient's mailboxes from the recipients table
 * (read here, on the reactor); an unknown user fails now. */
static int
local_resolve(struct relay_attempt *attempt, struct relay_group *group)
{
    const struct recipients *table = recipients_current();
    if (attempt->local_mailboxes == NULL) {
        attempt->local_mailboxes = calloc(attempt->entry.rcpt_count,
                                          sizeof(*attempt->local_mailboxes));
        if (attempt->local_mailboxes == NULL) {
            return -ENOMEM;
        }
    }
    for (size_t k = 0; k < group->rcpt_count; k++) {
        size_t index = group->rcpts[k];
        const char *address = attempt->entry.rcpts[index].address;
        const char *mailboxes[RELAY_MAILBOXES_PER_RCPT];
        const char *remotes[1];
        struct recipients_result result = {
            .mailboxes = mailboxes,
            .mailbox_capacity = RELAY_MAILBOXES_PER_RCPT,
            .remotes = remotes,
            .remote_capacity = 1,
        };
        enum recipients_status status = recipients_resolve(
            table, (struct span){ .ptr = address, .len = strlen(address) }, &result);
        if (status == RECIPIENTS_UNKNOWN_USER || status == RECIPIENTS_SYNTAX ||
            status == RECIPIENTS_RELAY_FORM) {
            char reply[QUEUE_REPLY_BYTES];
            (void)snprintf(reply, sizeof(reply),
                           "550 5.1.1 <%s>: Recipient address rejected: User unknown in local "
                           "recipient table", address);
            relay_result_set(group, index, QUEUE_OUTCOME_FAILED, reply, NULL);
            continue;
        }
        if (status != RECIPIENTS_OK || result.mailbox_count == 0) {
            relay_result_set(group, index, QUEUE_OUTCOME_DEFERRED,
                             "451 4.3.0 local recipient cannot be resolved now", NULL);
            continue;
        }
        if (result.remote_count > 0) {
            log_warning("%s: <%s>: the alias's remote targets are not followed for a queued "
                        "message; its local mailboxes get it", attempt->id, address);
        }
        char **list = calloc(result.mailbox_count + 1, sizeof(*list));
        if (list == NULL) {
            return -ENOMEM;
        }
        for (size_t m = 0; m < result.mailbox_count; m++) {
            list[m] = strdup(mailboxes[m]);
            if (list[m] == NULL) {
                attempt->local_mailboxes[index] = list;
                return -ENOMEM;
            }
        }
        attempt->local_mailboxes[index] = list;
    }
    return 0;
}

/* After ROUTE: every group to its destination, local ones to LOCAL. */
static void
attempt_dispatch(struct relay_attempt *attempt)
{
    attempt->phase = RELAY_PHASE_SEND;
    size_t local_count = 0;
    /* groups_open counts every group; a LOCAL job stands for the local ones. */
    for (size_t i = 0; i < attempt->group_count; i++) {
        struct relay_group *group = &attempt->groups[i];
        if (group->is_local) {
            local_count++;
            continue;
        }
        ASSERT(group->is_routed);
        if (group->route.status != ROUTE_OK || group->route.hop_count == 0) {
            char reply[QUEUE_REPLY_BYTES];
            uint16_t code = group->route.reply_code != 0 ? group->route.reply_code : 451;
            (void)snprintf(reply, sizeof(reply), "%u %s %s", (unsigned)code,
                           group->route.enhanced[0] != '\0' ? group->route.enhanced
                           : code >= 500                    ? "5.4.4"
                                                            : "4.4.3",
                           group->route.reason);
            group_fail_open(group,
                            group->route.status == ROUTE_PERMFAIL ? QUEUE_OUTCOME_FAILED
                                                                  : QUEUE_OUTCOME_DEFERRED,
                            reply);
            continue;
        }
        if (reactor_is_draining(relay_agent.reactor)) {
            relay_group_done(group); /* stopping: untried, stays pending */
            continue;
        }
        struct relay_dest *dest = dest_get(group->key);
        if (dest == NULL) {
            group_fail_open(group, QUEUE_OUTCOME_DEFERRED, "451 4.3.0 out of memory");
            continue;
        }
        dest_push(dest, group, false);
        relay_dest_kick(dest);
    }
    if (local_count > 0) {
        /* The local groups stay open until the LOCAL job is back; one
         * submit, which may be the attempt's last open work, so it goes
         * last: groups_open still counts them. */
        attempt->phase = RELAY_PHASE_LOCAL;
        attempt_submit(attempt);
    }
}

static void
attempt_done(struct job *job, struct conn *conn)
{
    (void)conn;
    struct relay_attempt *attempt = (struct relay_attempt *)job;
    switch (attempt->phase) {
    case RELAY_PHASE_LOAD: {
        int rc = attempt->rc;
        if (rc == -EWOULDBLOCK) {
            attempt_finish(attempt, now_s() + RELAY_BUSY_RETRY_S);
        } else if (rc == -EAGAIN) {
            attempt_finish(attempt, attempt->next_due);
        } else if (rc == -EPERM) {
            attempt_finish_held(attempt);
        } else if (rc == -ENOENT || rc == -EBADMSG) {
            attempt_finish(attempt, 0); /* gone, or left for the operator */
        } else if (rc != 0) {
            attempt_finish(attempt, now_s() + (int64_t)relay_agent.policy.retry_min_s);
        } else if (attempt->group_count == 0) {
            attempt->phase = RELAY_PHASE_APPLY;
            attempt_submit(attempt);
        } else {
            const struct recipients *table = recipients_current();
            bool needs_route = false;
            for (size_t i = 0; i < attempt->group_count; i++) {
                struct relay_group *group = &attempt->groups[i];
                group->is_local =
                    group->domain[0] != '\0' &&
                    recipients_domain_is_local(table, (struct span){ .ptr = group->domain,
                                                                     .len = strlen(group->domain) });
                if (group->is_local && local_resolve(attempt, group) != 0) {
                    group->is_local = false;
                    group->is_routed = true;
                    group->route.status = ROUTE_TEMPFAIL;
                    group->route.reply_code = 451;
                    (void)snprintf(group->route.enhanced, sizeof(group->route.enhanced),
                                   "4.3.0");
                    (void)snprintf(group->route.reason, sizeof(group->route.reason),
                                   "out of memory");
                }
                needs_route = needs_route || (!group->is_local && !group->is_routed);
            }
            if (needs_route) {
                attempt->phase = RELAY_PHASE_ROUTE;
                attempt_submit(attempt);
            } else {
                attempt_dispatch(attempt);
            }
        }
        return;
    }
    case RELAY_PHASE_ROUTE:
        if (attempt->is_dns_waiting) {
            attempt->is_dns_waiting = false;
            attempt_submit(attempt); /* the rerun, with the answers in */
            return;
        }
        attempt_dispatch(attempt);
        return;
    case RELAY_PHASE_LOCAL:
        attempt->phase = RELAY_PHASE_SEND;
        for (size_t i = 0; i < attempt->group_count; i++) {
            struct relay_group *group = &attempt->groups[i];
            if (group->is_local) {
                for (size_t k = 0; k < group->rcpt_count; k++) {
                    const struct relay_result *result = &attempt->results[group->rcpts[k]];
                    log_info("%s: to=<%s>, relay=local, delay=%lld, status=%s (%s)",
                             attempt->id, attempt->entry.rcpts[group->rcpts[k]].address,
                             (long long)(now_s() - attempt->entry.arrival),
                             kind_status(result->kind), result->reply);
                }
                group->is_done = true;
                attempt_group_closed(attempt);
            }
        }
        return;
    case RELAY_PHASE_APPLY: {
        for (size_t i = 0; i < attempt->entry.rcpt_count && attempt->results != NULL; i++) {
            const struct relay_result *result = &attempt->results[i];
            if (!result->is_set) {
                continue;
            }
            stats_add(result->kind == QUEUE_OUTCOME_DEFERRED ? &metrics.rcpt_deferred
                      : result->kind == QUEUE_OUTCOME_FAILED ? &metrics.rcpt_bounced
                                                             : &metrics.rcpt_delivered,
                      1);
        }
        for (size_t i = 0; i < attempt->outcome.generated_count; i++) {
            entry_track(attempt->outcome.generated_ids[i], now_s(), false);
        }
        int64_t next_due;
        if (attempt->apply_rc != 0) {
            next_due = now_s() + (int64_t)relay_agent.policy.retry_min_s;
        } else if (attempt->outcome.is_removed) {
            log_info("%s: removed", attempt->id);
            next_due = 0;
        } else {
            next_due = attempt->outcome.next_attempt > 0 ? attempt->outcome.next_attempt
                                                         : now_s() + 1;
        }
        attempt_finish(attempt, next_due);
        return;
    }
    case RELAY_PHASE_SEND:
        ASSERT(false);
    }
}

/* ---- the queue scan ------------------------------------------------------------ */

static int
scan_visit(void *ctx, const char *id)
{
    struct relay_scan *scan = ctx;
    if (scan->count == scan->capacity) {
        size_t capacity = scan->capacity == 0 ? 1024 : scan->capacity * 2;
        if (capacity > RELAY_DUE_CAPACITY) {
            return 1; /* the rest waits for the next scan */
        }
        void *grown = realloc(scan->ids, capacity * sizeof(*scan->ids));
        if (grown == NULL) {
            return 1;
        }
        scan->ids = grown;
        scan->capacity = capacity;
    }
    (void)snprintf(scan->ids[scan->count++], SPOOL_QUEUE_ID_BYTES, "%s", id);
    return 0;
}

static void
scan_run(struct job *job)
{
    struct relay_scan *scan = (struct relay_scan *)job;
    scan->rc = queue_scan(relay_agent.queue, false, scan_visit, scan);
    reactor_job_complete(job);
}

static void
scan_done(struct job *job, struct conn *conn)
{
    (void)conn;
    struct relay_scan *scan = (struct relay_scan *)job;
    if (scan->rc < 0) {
        log_error("queue scan: %s", strerror(-scan->rc));
    }
    int64_t now = now_s();
    for (size_t i = 0; i < scan->count; i++) {
        entry_track(scan->ids[i], now, false);
    }
    if (scan->count > 0) {
        log_debug("queue scan: %zu entries", scan->count);
    }
    free(scan->ids);
    free(scan);
    agent.is_scan_running = false;
    /* What it found is due now: the hook must look at the heap again (a
     * done() callback is not a hook run). */
    reactor_hook_wake(relay_agent.reactor);
}

static void
scan_start(void)
{
    struct relay_scan *scan = agent.scan_pending;
    agent.scan_pending = NULL;
    if (scan == NULL) {
        scan = calloc(1, sizeof(*scan));
        if (scan == NULL) {
            return;
        }
        scan->job.run = scan_run;
        scan->job.done = scan_done;
    }
    if (reactor_job_submit(relay_agent.reactor, &scan->job) != 0) {
        agent.scan_pending = scan;
        return;
    }
    agent.is_scan_running = true;
    agent.next_scan = now_s() + (int64_t)relay_agent.policy.retry_min_s;
}

/* ---- the hook ---------------------------------------------------------------------- */

static void
inbox_take(void)
{
    struct relay_inbox *inbox = &agent.inbox;
    char (*ids)[SPOOL_QUEUE_ID_BYTES] = NULL;
    size_t count = 0;
    bool is_flush_all = false;
    bool is_scan_wanted = false;
    pthread_mutex_lock(&inbox->lock);
    if (inbox->count > 0) {
        ids = inbox->ids;
        count = inbox->count;
        inbox->ids = NULL;
        inbox->count = 0;
        inbox->capacity = 0;
    }
    is_flush_all = inbox->is_flush_all;
    is_scan_wanted = inbox->is_scan_wanted;
    inbox->is_flush_all = false;
    inbox->is_scan_wanted = false;
    pthread_mutex_unlock(&inbox->lock);
    int64_t now = now_s();
    for (size_t i = 0; i < count; i++) {
        /* A leading '!' marks a flush of that id. */
        bool is_flush = ids[i][0] == '!';
        entry_track(ids[i] + (is_flush ? 1 : 0), now, is_flush);
    }
    free(ids);
    if (is_flush_all) {
        for (size_t b = 0; b < RELAY_ENTRY_BUCKETS; b++) {
            for (struct relay_entry *entry = agent.entries[b]; entry != NULL;
                 entry = entry->bucket_next) {
                entry->is_forced = true;
                if (!entry->is_active) {
                    entry_schedule(entry, now);
                }
            }
        }
    }
    if (is_flush_all || is_scan_wanted) {
        agent.next_scan = now; /* also finds what is not in memory */
    }
}

/* Wake the hook from any thread, once it is set. */
static void
relay_wake(void)
{
    struct reactor *reactor = __atomic_load_n(&agent.reactor, __ATOMIC_ACQUIRE);
    if (reactor != NULL) {
        reactor_hook_wake(reactor);
    }
}

static void
inbox_put(const char *text)
{
    struct relay_inbox *inbox = &agent.inbox;
    pthread_mutex_lock(&inbox->lock);
    if (inbox->count == inbox->capacity) {
        size_t capacity = inbox->capacity == 0 ? 64 : inbox->capacity * 2;
        void *grown = capacity <= RELAY_INBOX_MAX
                          ? realloc(inbox->ids, capacity * sizeof(*inbox->ids))
                          : NULL;
        if (grown == NULL) {
            inbox->is_scan_wanted = true;
            pthread_mutex_unlock(&inbox->lock);
            relay_wake();
            return;
        }
        inbox->ids = grown;
        inbox->capacity = capacity;
    }
    (void)snprintf(inbox->ids[inbox->count++], SPOOL_QUEUE_ID_BYTES, "%s", text);
    pthread_mutex_unlock(&inbox->lock);
    relay_wake();
}

/* Stopping: recipients still waiting for a session are not tried in this
 * attempt, so their entries' results so far are written now (and their
 * locks let go) instead of being lost with the process. */
static void
drain_waiting(void)
{
    struct relay *relay = &relay_agent;
    for (size_t b = 0; b < RELAY_DEST_BUCKETS; b++) {
        for (struct relay_dest *dest = relay->buckets[b]; dest != NULL;
             dest = dest->bucket_next) {
            struct relay_group *group;
            while ((group = dest_pop(dest)) != NULL) {
                group->dest = NULL; /* so done() kicks no destination */
                relay_group_done(group);
            }
            dest->is_dirty = false;
            dest->dirty_next = NULL;
        }
    }
    relay->dirty_head = NULL;
}

/* The gauges: the cheap ones at every hook run, the entry table's at most
 * every RELAY_GAUGES_INTERVAL_MS (a walk is linear in the entries).
 * Returns the ms until the next walk is wanted, or -1 when none is. */
static int64_t
gauges_publish(void)
{
    stats_set(&metrics.entries, agent.entry_count);
    stats_set(&metrics.entries_active, relay_agent.attempts);
    stats_set(&metrics.sessions_open, relay_agent.sessions);
    int64_t now = now_ms();
    if (agent.entry_count == 0) {
        /* Nothing to walk: the empty queue shows at once. */
        stats_set(&metrics.entries_deferred, 0);
        stats_set(&metrics.entries_held, 0);
        stats_set(&metrics.oldest_arrival_s, 0);
        agent.gauges_at_ms = now;
        return -1;
    }
    if (now - agent.gauges_at_ms < RELAY_GAUGES_INTERVAL_MS) {
        return agent.gauges_at_ms + RELAY_GAUGES_INTERVAL_MS - now;
    }
    uint64_t deferred = 0;
    uint64_t held = 0;
    int64_t oldest = 0;
    for (size_t i = 0; i < RELAY_ENTRY_BUCKETS; i++) {
        for (const struct relay_entry *e = agent.entries[i]; e != NULL; e = e->bucket_next) {
            if (e->is_held && !e->is_active) {
                held++; /* kept on purpose: neither deferred nor old mail */
                continue;
            }
            if (e->is_tried && !e->is_active) {
                deferred++;
            }
            if (oldest == 0 || e->arrival < oldest) {
                oldest = e->arrival;
            }
        }
    }
    stats_set(&metrics.entries_deferred, deferred);
    stats_set(&metrics.entries_held, held);
    stats_set(&metrics.oldest_arrival_s, oldest > 0 ? (uint64_t)oldest : 0);
    agent.gauges_at_ms = now;
    return -1;
}

void
relay_metrics_read(struct relay_metrics *out)
{
    out->entries = stats_load(&metrics.entries);
    out->entries_active = stats_load(&metrics.entries_active);
    out->entries_deferred = stats_load(&metrics.entries_deferred);
    out->entries_held = stats_load(&metrics.entries_held);
    out->oldest_arrival_s = stats_load(&metrics.oldest_arrival_s);
    out->sessions_open = stats_load(&metrics.sessions_open);
    out->attempts_total = stats_load(&metrics.attempts_total);
    out->rcpt_delivered = stats_load(&metrics.rcpt_delivered);
    out->rcpt_deferred = stats_load(&metrics.rcpt_deferred);
    out->rcpt_bounced = stats_load(&metrics.rcpt_bounced);
}

static uint32_t
relay_hook(void *arg)
{
    (void)arg;
    struct relay *relay = &relay_agent;
    bool is_draining = reactor_is_draining(relay->reactor);
    inbox_take();
    int64_t now = now_s();
    /* Jobs the pool refused earlier. */
    size_t resubmit_count = agent.resubmit_count;
    struct relay_attempt **resubmit = agent.resubmit;
    agent.resubmit = NULL;
    agent.resubmit_count = 0;
    agent.resubmit_capacity = 0;
    for (size_t i = 0; i < resubmit_count; i++) {
        attempt_submit(resubmit[i]);
    }
    free(resubmit);
    if (!is_draining) {
        if (!agent.is_scan_running && now >= agent.next_scan) {
            scan_start();
        }
        struct queue_due_entry due;
        while (relay->attempts < RELAY_ATTEMPTS_MAX &&
               queue_due_pop(agent.due, now, &due) == 0) {
            struct relay_entry *entry = *entry_slot(due.queue_id);
            if (entry == NULL || entry->is_active || entry->due != due.due_s) {
                continue; /* stale */
            }
            attempt_start(entry);
        }
    }
    /* Destinations with work or a freed session. */
    int64_t wait_ms = -1;
    struct relay_dest *dirty = relay->dirty_head;
    struct relay_dest *waiting = NULL; /* held back by their rate delay */
    relay->dirty_head = NULL;
    while (dirty != NULL) {
        struct relay_dest *dest = dirty;
        dirty = dest->dirty_next;
        dest->is_dirty = false;
        dest->dirty_next = NULL;
        int64_t ms = dest_pump(dest);
        if (ms > 0) {
            dest->is_dirty = true;
            dest->dirty_next = waiting;
            waiting = dest;
            if (wait_ms < 0 || ms < wait_ms) {
                wait_ms = ms;
            }
        } else {
            dest_drop_if_empty(dest);
        }
    }
    /* Looked at again when the delay has passed (the returned deadline),
     * not at once: a hook that woke itself would keep the reactor from
     * ever waiting for its completions. */
    while (waiting != NULL) {
        struct relay_dest *dest = waiting;
        waiting = dest->dirty_next;
        dest->dirty_next = relay->dirty_head;
        relay->dirty_head = dest;
    }
    int64_t gauges_ms = gauges_publish();
    if (is_draining) {
        drain_waiting();
        return REACTOR_HOOK_IDLE;
    }
    int64_t next = agent.next_scan;
    int64_t due_s;
    if (queue_due_next(agent.due, &due_s) == 0 && due_s < next) {
        next = due_s;
    }
    int64_t ms = next <= now ? 1 : (next - now) * 1000;
    if (relay->attempts >= RELAY_ATTEMPTS_MAX) {
        ms = 1000; /* the due heap waits for attempts to end; they wake us */
    }
    if (wait_ms > 0 && wait_ms < ms) {
        ms = wait_ms;
    }
    if (gauges_ms >= 0 && gauges_ms + 1 < ms) {
        ms = gauges_ms + 1; /* back to walk the entries once the interval has passed */
    }
    return ms > 3600000 ? 3600000u : (uint32_t)ms;
}

/* ---- configuration files ------------------------------------------------------------- */

/* Read a small "key value" file: each line's two words to fn. Returns 0,
 * or -errno / -EINVAL (logged with the line). */
static int
pairs_file_read(const char *what, const char *path,
                int (*fn)(const char *key, const char *value, void *ctx), void *ctx)
{
    FILE *file = fopen(path, "re");
    if (file == NULL) {
        int rc = -errno;
        log_error("%s %s: %s", what, path, strerror(-rc));
        return rc;
    }
    char line[2048];
    unsigned number = 0;
    int rc = 0;
    size_t total = 0;
    while (rc == 0 && fgets(line, sizeof(line), file) != NULL) {
        number++;
        size_t line_len = strlen(line);
        total += line_len;
        if (line_len == sizeof(line) - 1 && line[line_len - 1] != '\n') {
            log_error("%s %s:%u: line longer than %zu bytes", what, path, number,
                      sizeof(line) - 2);
            rc = -E2BIG;
            break;
        }
        if (total > RELAY_FILE_BYTES_MAX) {
            log_error("%s %s: larger than %u bytes", what, path, RELAY_FILE_BYTES_MAX);
            rc = -E2BIG;
            break;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0') {
            continue;
        }
        /* Two words, blank-separated, each within its buffer. */
        char key[RELAY_KEY_BYTES];
        char value[SMTP_CLIENT_AUTH_BYTES_MAX * 2 + 2];
        size_t key_len = strcspn(p, " \t\r\n");
        const char *v = p + key_len;
        v += strspn(v, " \t");
        size_t value_len = strcspn(v, " \t\r\n");
        const char *rest = v + value_len;
        rest += strspn(rest, " \t\r\n");
        if (key_len == 0 || key_len >= sizeof(key) || value_len == 0 ||
            value_len >= sizeof(value) || *rest != '\0') {
            log_error("%s %s:%u: want \"destination value\"", what, path, number);
            rc = -EINVAL;
            break;
        }
        memcpy(key, p, key_len);
        key[key_len] = '\0';
        memcpy(value, v, value_len);
        value[value_len] = '\0';
        rc = fn(key, value, ctx);
        if (rc != 0) {
            log_error("%s %s:%u: bad entry", what, path, number);
        }
    }
    (void)fclose(file);
    return rc;
}

static void
key_lower(char *key)
{
    for (char *p = key; *p != '\0'; p++) {
        *p = (char)ascii_lower((unsigned char)*p);
    }
}

static int
credential_add(const char *key, const char *value, void *ctx)
{
    (void)ctx;
    struct relay *relay = &relay_agent;
    const char *colon = strchr(value, ':');
    if (colon == NULL || colon == value || colon[1] == '\0' ||
        (size_t)(colon - value) > SMTP_CLIENT_AUTH_BYTES_MAX ||
        strlen(colon + 1) > SMTP_CLIENT_AUTH_BYTES_MAX ||
        relay->credential_count >= RELAY_CREDENTIALS_MAX) {
        return -EINVAL;
    }
    struct relay_credential *grown =
        realloc(relay->credentials, (relay->credential_count + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    relay->credentials = grown;
    struct relay_credential *credential = &grown[relay->credential_count++];
    memset(credential, 0, sizeof(*credential));
    /* The key as the agent writes destinations: "[host]:port" gets its
     * port, a bare name stays a name. */
    struct route_nexthop nexthop;
    char error[128];
    if (route_nexthop_parse(key, strlen(key), &nexthop, error, sizeof(error)) != 0) {
        return -EINVAL;
    }
    (void)snprintf(credential->key, sizeof(credential->key), "%s%s%s:%u",
                   nexthop.is_mx_lookup ? "" : "[", nexthop.host,
                   nexthop.is_mx_lookup ? "" : "]", (unsigned)nexthop.port);
    memcpy(credential->user, value, (size_t)(colon - value));
    (void)snprintf(credential->password, sizeof(credential->password), "%s", colon + 1);
    return 0;
}

static int
tls_policy_add(const char *key, const char *value, void *ctx)
{
    (void)ctx;
    struct relay *relay = &relay_agent;
    enum relay_tls_level level;
    if (relay_tls_level_parse(value, &level) != 0 || strlen(key) > ROUTE_NAME_BYTES_MAX ||
        relay->tls_policy_count >= RELAY_TLS_POLICIES_MAX) {
        return -EINVAL;
    }
    struct relay_tls_policy *grown =
        realloc(relay->tls_policies, (relay->tls_policy_count + 1) * sizeof(*grown));
    if (grown == NULL) {
        return -ENOMEM;
    }
    relay->tls_policies = grown;
    struct relay_tls_policy *policy = &grown[relay->tls_policy_count++];
    (void)snprintf(policy->domain, sizeof(policy->domain), "%s", key);
    key_lower(policy->domain);
    policy->level = level;
    return 0;
}

enum relay_tls_level
relay_tls_level_for(const char *domain)
{
    const struct relay *relay = &relay_agent;
    /* The domain itself, then ".parent" entries for its subdomains. */
    for (size_t i = 0; i < relay->tls_policy_count; i++) {
        if (strcmp(relay->tls_policies[i].domain, domain) == 0) {
            return relay->tls_policies[i].level;
        }
    }
    for (const char *dot = strchr(domain, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        for (size_t i = 0; i < relay->tls_policy_count; i++) {
            if (strcmp(relay->tls_policies[i].domain, dot) == 0) {
                return relay->tls_policies[i].level;
            }
        }
    }
    return relay->tls_level;
}

const struct relay_credential *
relay_credential_for(const char *key)
{
    const struct relay *relay = &relay_agent;
    for (size_t i = 0; i < relay->credential_count; i++) {
        if (strcmp(relay->credentials[i].key, key) == 0) {
            return &relay->credentials[i];
        }
    }
    return NULL;
}

/* Our own SMTP endpoints, so that an MX pointing at us is not a loop. */
static void
selves_collect(const struct config *config)
{
    struct relay *relay = &relay_agent;
    const struct listen_list *sets[] = { &config->listen[LISTENER_SMTP],
                                         &config->listen[LISTENER_SUBMISSION] };
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (size_t i = 0; i < sets[s]->count && relay->self_count < RELAY_SELVES_MAX; i++) {
            const struct listen_address *address = &sets[s]->addresses[i];
            struct route_self *self = &relay->selves[relay->self_count];
            if (address->addr.ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *)&address->addr;
                self->address.family = AF_INET;
                self->address.v4 = in->sin_addr;
                self->port = ntohs(in->sin_port);
            } else if (address->addr.ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&address->addr;
                self->address.family = AF_INET6;
                self->address.v6 = in6->sin6_addr;
                self->port = ntohs(in6->sin6_port);
            } else {
                continue;
            }
            relay->self_count++;
        }
    }
}

/* ---- public ---------------------------------------------------------------------------- */

int
relay_start(const struct config *config, struct reactor *reactor, struct dns_resolver *dns,
            const struct dkim_keys *dkim_keys)
{
    struct relay *relay = &relay_agent;
    memset(relay, 0, sizeof(*relay));
    relay->config = config;
    relay->reactor = reactor;
    relay->dns = dns;
    relay->dkim_keys = dkim_keys;
    if (getrandom(&relay->random_state, sizeof(relay->random_state), 0) !=
            (ssize_t)sizeof(relay->random_state) ||
        relay->random_state == 0) {
        relay->random_state = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ULL | 1;
    }
    relay->policy = (struct queue_schedule_policy){
        .retry_min_s = (uint32_t)config->queue_retry_min_s,
        .retry_max_s = (uint32_t)config->queue_retry_max_s,
        .lifetime_s = (uint32_t)config->queue_lifetime_s,
        .delay_warning_s = (uint32_t)config->delay_warning_time_s,
    };
    if (queue_schedule_check(&relay->policy) != 0) {
        log_error("queue_retry_min, queue_retry_max, queue_lifetime and delay_warning_time do "
                  "not fit together");
        return -EINVAL;
    }
    int level_rc = relay_tls_level_parse(config->smtp_tls_security, &relay->tls_level);
    ASSERT(level_rc == 0); /* config_finish checked it */
    (void)level_rc;
    relay->family = strcmp(config->smtp_address_preference, "ipv6") == 0
                        ? ROUTE_FAMILY_PREFER_IPV6
                    : strcmp(config->smtp_address_preference, "ipv4-only") == 0
                        ? ROUTE_FAMILY_IPV4_ONLY
                    : strcmp(config->smtp_address_preference, "ipv6-only") == 0
                        ? ROUTE_FAMILY_IPV6_ONLY
                        : ROUTE_FAMILY_PREFER_IPV4;
    const char *helo = config->smtp_helo_name[0] != '\0' ? config->smtp_helo_name
                                                         : config->myhostname;
    (void)snprintf(relay->helo_name, sizeof(relay->helo_name), "%s", helo);
    selves_collect(config);
    char error[512];
    int rc = route_table_load(config->relay_host, config->relay_domains, config->transport_file,
                              &relay->routes, error, sizeof(error));
    if (rc != 0) {
        log_error("routing: %s", error);
        return rc;
    }
    if (config->smtp_sasl_password_file[0] != '\0') {
        rc = pairs_file_read("smtp_sasl_password_file", config->smtp_sasl_password_file,
                             credential_add, NULL);
        if (rc != 0) {
            return rc;
        }
    }
    if (config->smtp_tls_policy_file[0] != '\0') {
        rc = pairs_file_read("smtp_tls_policy_file", config->smtp_tls_policy_file,
                             tls_policy_add, NULL);
        if (rc != 0) {
            return rc;
        }
    }
    rc = tls_client_create(config->smtp_tls_ca_file[0] != '\0' ? config->smtp_tls_ca_file : NULL,
                           &relay->tls, error, sizeof(error));
    if (rc != 0) {
        log_error("smtp TLS client: %s", error);
        return rc;
    }
    if (config->smtp_mta_sts) {
        struct relay_tls_policy_settings sts = {
            .client = relay->tls,
            .fetch_timeout_ms = config->mta_sts_fetch_timeout_ms,
            .port = (uint16_t)config->mta_sts_port,
            .cache_max = config->mta_sts_cache_max,
        };
        rc = relay_tls_policy_start(&sts);
        if (rc != 0) {
            log_error("MTA-STS policy cache: %s", strerror(-rc));
            return rc;
        }
    }
    rc = queue_open(config->data_dir, config->fsync, &relay->queue);
    if (rc != 0) {
        log_error("outbound queue: %s", strerror(-rc));
        return rc;
    }
    rc = queue_due_create(RELAY_DUE_CAPACITY, &agent.due);
    if (rc != 0) {
        return rc;
    }
    agent.next_scan = 0; /* at once: what an earlier run left */
    __atomic_store_n(&agent.is_running, true, __ATOMIC_RELEASE);
    reactor_hook_set(reactor, relay_hook, NULL);
    __atomic_store_n(&agent.reactor, reactor, __ATOMIC_RELEASE);
    log_info("relay: delivering the outbound queue (%zu transport entries%s%s)",
             route_table_transport_count(relay->routes),
             config->relay_host[0] != '\0' ? ", relay_host " : "", config->relay_host);
    return 0;
}

void
relay_notify_queued(const char *id)
{
    inbox_put(id); /* kept until the hook runs, also before relay_start */
}

int
relay_flush(const char *id)
{
    if (!__atomic_load_n(&agent.is_running, __ATOMIC_ACQUIRE)) {
        return -ESRCH;
    }
    if (id == NULL) {
        pthread_mutex_lock(&agent.inbox.lock);
        agent.inbox.is_flush_all = true;
        pthread_mutex_unlock(&agent.inbox.lock);
        relay_wake();
        return 0;
    }
    char text[SPOOL_QUEUE_ID_BYTES + 1];
    (void)snprintf(text, sizeof(text), "!%s", id);
    inbox_put(text);
    return 0;
}

int
relay_control_flush_all(void *arg, char *out, size_t out_bytes)
{
    (void)arg;
    int rc = relay_flush(NULL);
    log_info("control: queue flush requested for every entry%s",
             rc == 0 ? "" : "; no delivery agent runs (outbound_delivery = no)");
    return snprintf(out, out_bytes, "{\"result\":\"ok\",\"delivery_agent\":%s}\n",
                    rc == 0 ? "true" : "false");
}

int
relay_control_flush_one(void *arg, const char *argument, char *out, size_t out_bytes)
{
    (void)arg;
    if (!queue_id_is_valid(argument)) {
        return snprintf(out, out_bytes, "{\"error\":\"not a queue id\"}\n");
    }
    int rc = relay_flush(argument);
    log_info("control: queue flush requested for %s%s", argument,
             rc == 0 ? "" : "; no delivery agent runs (outbound_delivery = no)");
    return snprintf(out, out_bytes, "{\"result\":\"ok\",\"delivery_agent\":%s}\n",
                    rc == 0 ? "true" : "false");
}

void
relay_stop(void)
{
    struct relay *relay = &relay_agent;
    if (!__atomic_load_n(&agent.is_running, __ATOMIC_ACQUIRE)) {
        return;
    }
    __atomic_store_n(&agent.is_running, false, __ATOMIC_RELEASE);
    for (size_t b = 0; b < RELAY_ENTRY_BUCKETS; b++) {
        while (agent.entries[b] != NULL) {
            struct relay_entry *entry = agent.entries[b];
            agent.entries[b] = entry->bucket_next;
            free(entry);
        }
    }
    for (size_t b = 0; b < RELAY_DEST_BUCKETS; b++) {
        while (relay->buckets[b] != NULL) {
            struct relay_dest *dest = relay->buckets[b];
            relay->buckets[b] = dest->bucket_next;
            free(dest);
        }
    }
    free(agent.inbox.ids);
    free(agent.resubmit);
    free(agent.scan_pending);
    queue_due_destroy(&agent.due);
    __atomic_store_n(&agent.reactor, NULL, __ATOMIC_RELEASE);
    queue_close(&relay->queue);
    route_table_destroy(&relay->routes);
    relay_tls_policy_stop(); /* the workers stopped: no resolve runs */
    tls_client_free(&relay->tls);
    free(relay->credentials);
    free(relay->tls_policies);
    memset(agent.entries, 0, sizeof(agent.entries));
}
