/*
 * core/relay_internal.h - what the three rooms of the delivery agent share:
 * the scheduler (core/relay.c), the SMTP client sessions
 * (core/relay_session.c) and the worker jobs (core/relay_jobs.c). Not for
 * anyone else. Everything here lives on the agent's reactor thread, except
 * an attempt while one of its jobs runs on a worker (then only that job
 * touches it).
 */
#ifndef TOASTER_CORE_RELAY_INTERNAL_H
#define TOASTER_CORE_RELAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/job.h"
#include "core/relay_tls_policy.h"
#include "proto/smtp/smtp_client.h"
#include "store/queue.h"
#include "store/queue_outcome.h"
#include "store/queue_schedule.h"
#include "store/route.h"

struct config;
struct conn;
struct dns_batch;
struct dns_resolver;
struct reactor;
struct relay_dest;
struct tls_client;
struct dkim_keys;

#define RELAY_ATTEMPTS_MAX 4096u     /* entries being attempted at once */
#define RELAY_DEST_BUCKETS 4096u     /* destinations hash table */
#define RELAY_SELVES_MAX 16u         /* our own SMTP endpoints (MX-to-self) */
#define RELAY_CREDENTIALS_MAX 1024u  /* smtp_sasl_password_file entries */
#define RELAY_TLS_POLICIES_MAX 65536u /* smtp_tls_policy_file entries */
#define RELAY_FILE_BYTES_MAX (4u * 1024 * 1024)
#define RELAY_KEY_BYTES (ROUTE_NAME_BYTES_MAX + 16u) /* "[host]:port" or a domain */
#define RELAY_BUSY_RETRY_S 1         /* an entry locked by toasterctl: look again */
#define RELAY_READ_BYTES_MAX (256u * 1024u) /* a message this small is read, larger mapped */

/* What one recipient got in this attempt. */
struct relay_result {
    bool                    is_set;
    bool                    is_too_many; /* 452 to its RCPT: another transaction at once */
    enum queue_outcome_kind kind;
    char                    reply[QUEUE_REPLY_BYTES];
    char                    remote_mta[ROUTE_NAME_BYTES_MAX + 1];
};

struct relay_attempt;

/* The due recipients of one attempt that share a destination. */
struct relay_group {
    struct relay_attempt   *attempt;
    char                    domain[ROUTE_NAME_BYTES_MAX + 1]; /* lower case */
    char                    key[RELAY_KEY_BYTES]; /* destination: domain or next hop */
    bool                    is_local;             /* delivered into our own mailboxes */
    bool                    is_routed;            /* route is filled */
    bool                    is_done;
    struct route_result     route;
    /* Per route hop, what TLS it gets (core/relay_tls_policy): made on the
     * ROUTE worker once the route is OK, route.hop_count long; NULL before.
     * Freed with the attempt. */
    struct relay_tls_hop   *tls_hops;
    bool                    is_tls_resolved;
    uint32_t                hop_next;       /* the next hop of route to connect to */
    uint32_t                sessions_tried; /* hops that answered TCP */
    size_t                 *rcpts;          /* indexes into attempt->entry.rcpts */
    size_t                  rcpt_count;
    struct smtp_client_rcpt *client_rcpts;
    char                    last_error[QUEUE_REPLY_BYTES]; /* why the last hop failed */
    struct relay_dest      *dest;
    struct relay_group     *next_waiting; /* on dest's FIFO */
};

enum relay_phase {
    RELAY_PHASE_LOAD,  /* lock, load, map, group (worker) */
    RELAY_PHASE_ROUTE, /* resolve the groups' routes (worker, DNS) */
    RELAY_PHASE_SEND,  /* sessions and local delivery */
    RELAY_PHASE_LOCAL, /* local groups into mailboxes (worker) */
    RELAY_PHASE_APPLY, /* results to disk, DSNs, unlock (worker) */
};

/* One entry being attempted. The job is first: the worker pool's handle. */
struct relay_attempt {
    struct job              job;
    enum relay_phase        phase;
    char                    id[SPOOL_QUEUE_ID_BYTES];
    bool                    is_forced;   /* flush: every pending recipient, now */
    int                     rc;          /* LOAD: 0, or why there is nothing to do */
    int64_t                 next_due;    /* LOAD with nothing due: when to look again */
    int64_t                 started;     /* unix seconds */
    int                     lock_fd;
    struct queue_entry      entry;
    const uint8_t          *map;         /* the message file: read, or mapped when large */
    bool                    is_map_heap; /* map is malloc'd (read), not mmap'd */
    size_t                  map_len;
    size_t                  body_offset; /* after the Return-Path line */
    char                   *dkim_fields; /* our DKIM-Signature fields, sent first; or NULL */
    size_t                  dkim_fields_len;
    bool                    is_8bit;
    bool                    is_utf8;     /* an address is UTF-8 */
    char                    envid_xtext[QUEUE_ENVID_BYTES * 3];
    struct relay_group     *groups;
    size_t                  group_count;
    size_t                  groups_open; /* not done yet */
    struct relay_result    *results;     /* one per entry.rcpts */
    uint64_t                seed;
    struct dns_batch       *batch;
    bool                    is_dns_waiting;
    /* Local groups: the canonical mailboxes per recipient, resolved on the
     * reactor (the recipients table is read there only). */
    char                 ***local_mailboxes; /* per entry rcpt, NULL-terminated lists */
    struct queue_outcome_result outcome;
    int                     apply_rc;
};

/* A destination: sessions and recipients waiting for one. */
struct relay_dest {
    char                key[RELAY_KEY_BYTES];
    uint32_t            sessions;      /* open (connecting, busy or idle) */
    struct relay_group *waiting_head;
    struct relay_group *waiting_tail;
    size_t              waiting_count;
    struct relay_session *idle;        /* sessions with nothing to do, kept for reuse */
    int64_t             next_start_ms; /* smtp_destination_rate_delay */
    bool                is_dirty;      /* on the agent's pump list */
    struct relay_dest  *dirty_next;
    struct relay_dest  *bucket_next;
};

/* Client SASL: one next hop's user and password. */
struct relay_credential {
    char key[RELAY_KEY_BYTES];
    char user[SMTP_CLIENT_AUTH_BYTES_MAX + 1];
    char password[SMTP_CLIENT_AUTH_BYTES_MAX + 1];
};

struct relay_tls_policy {
    char                 domain[ROUTE_NAME_BYTES_MAX + 1];
    enum relay_tls_level level;
};

/* The agent (one per daemon). */
struct relay {
    const struct config      *config;
    struct reactor           *reactor;
    struct queue             *queue;
    struct dns_resolver      *dns;
    struct route_table       *routes;
    const struct dkim_keys   *dkim_keys;     /* NULL: nothing is signed here */
    struct tls_client        *tls;
    struct queue_schedule_policy policy;
    enum relay_tls_level      tls_level;
    struct relay_tls_policy  *tls_policies;
    size_t                    tls_policy_count;
    struct relay_credential  *credentials;
    size_t                    credential_count;
    struct route_self         selves[RELAY_SELVES_MAX];
    size_t                    self_count;
    enum route_family         family;
    char                      helo_name[SMTP_CLIENT_HELO_BYTES_MAX + 1];
    uint32_t                  sessions;       /* open in all */
    uint32_t                  attempts;       /* in progress */
    struct relay_dest        *buckets[RELAY_DEST_BUCKETS];
    struct relay_dest        *dirty_head;
    uint64_t                  random_state;
};

extern struct relay relay_agent;

/* core/relay.c, for the sessions: a group is finished (every recipient
 * has its result) or goes back to wait for another hop. */
void relay_group_done(struct relay_group *group);
void relay_group_retry(struct relay_group *group);
/* A recipient's result, logged the Postfix way. */
void relay_result_set(struct relay_group *group, size_t rcpt_index, enum queue_outcome_kind kind,
                      const char *reply, const char *relay_text);
/* The destination may take more work (a session ended or went idle). */
void relay_dest_kick(struct relay_dest *dest);
/* A session is idle: give it the next group, or NULL. */
struct relay_group *relay_dest_take(struct relay_dest *dest, const struct relay_session *session);
/* smtp_destination_rate_delay: may a message start now (then it counts)? */
bool relay_dest_rate_take(struct relay_dest *dest);
/* A session cannot start the group's message yet: back to the front of
 * its destination's line. */
void relay_group_requeue(struct relay_group *group);
enum relay_tls_level relay_tls_level_for(const char *domain);
const struct relay_credential *relay_credential_for(const char *key);
uint64_t relay_random(void);

/* core/relay_session.c */
struct relay_session;
/* Open a session for group to its next hop. Returns 0, or -errno (no
 * slot, no hop left: the caller defers). */
int relay_session_open(struct relay_dest *dest, struct relay_group *group);
/* Give an idle session a group. */
void relay_session_give(struct relay_session *session, struct relay_group *group);
/* Whether a session opened for another group of the destination may
 * carry this one (the same host, TLS at least as strict as it needs). */
bool relay_session_suits(const struct relay_session *session, const struct relay_group *group);
/* Close an idle session (QUIT). */
void relay_session_quit(struct relay_session *session);
struct relay_session *relay_session_next_idle(struct relay_session *session);

/* core/relay_jobs.c: run() for each phase; done() is relay.c's. */
void relay_job_run(struct job *job);
void relay_attempt_release(struct relay_attempt *attempt);

#endif
