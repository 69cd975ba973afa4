/*
 * core/smtp_listener.c - SMTP on the reactor: the conn_handler that drives
 * a struct smtp_session.
 *
 * Owns, per connection: the session, the transaction's delivery message
 * (recipients resolved at RCPT time), the spool file while DATA/BDAT bytes
 * stream into it (opened and written through io_uring: the reactor never
 * blocks on disk), and the body buffer borrowed from the reactor's pool.
 * At end of data the reactor syncs the spool file's data (io_uring) and
 * the message becomes a job: its filter stage runs on a worker (when one is
 * configured; otherwise it goes straight on), then the Sieve stage on a
 * worker (core/sieve_stage, when Sieve is on) chooses each mailbox's
 * copies, then store/delivery makes it durable in the Maildirs and the
 * reply comes back here. Messages and body
 * buffers come from per-reactor pools, so the steady state allocates
 * nothing. Runs on reactor threads, except the jobs' run functions
 * (workers).
 *
 * LMTP (lmtp_listen, RFC 2033) is the same session in LMTP mode, for a
 * trusted front end (Postfix, Exim) handing over final delivery: only
 * local recipients are taken (no relaying, whatever mynetworks says), no
 * inbound filter runs (the front end judged the mail; Sieve does run),
 * and each accepted recipient becomes a delivery message of its own over
 * the one spool file (struct lmtp_group), so each gets its own outcome
 * and reply: a mailbox that fails, or a Sieve reject, is that recipient's
 * alone. The committer batches them as it batches any messages. LMTP
 * allocates per transaction (its group and the recipients' strings); it
 * serves a few long-lived front-end connections, not the Internet.
 * Limits: spool_buffers per reactor (when all are busy, DATA waits for one).
 */
#define _GNU_SOURCE
#include "core/smtp_listener.h"
#include "filters/filter_chain.h"

#include <assert.h>
#include <ck_pr.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/array_grow.h"
#include "core/assertions.h"
#include "core/cidr_list.h"
#include "core/log.h"
#include "core/kv.h"
#include "core/login_delay.h"
#include "core/postscreen.h"
#include "core/send_limit.h"
#include "core/sieve_stage.h"
#include "core/stats.h"
#include "proto/smtp/smtp_from.h"
#include "proto/smtp/smtp_session.h"
#include "store/delivery.h"
#include "store/password.h"
#include "store/recipients.h"
#include "store/route.h"
#include "store/spool.h"

/* One accepted LMTP recipient. */
struct lmtp_rcpt {
    struct delivery_message *message; /* its mailboxes; NULL once handed to delivery */
    char                    *address; /* as given at RCPT */
    char                    *reply;   /* its final reply once known, else NULL */
};

/* One LMTP transaction: its recipients, then their messages in flight
 * over the one spool file. Held by the connection until its last reply
 * is out, and by each message until its done(); the last holder discards
 * the spool file and frees it. Only its reactor touches it. */
struct lmtp_group {
    uint32_t          refs;
    int               spool_fd; /* from the hand-over to delivery on, else -1 */
    bool              is_spool_unnamed;
    char              queue_id[SPOOL_QUEUE_ID_BYTES]; /* the spool file's */
    struct lmtp_rcpt *rcpts;
    size_t            rcpt_count;
    size_t            rcpt_capacity;
    size_t            done_count; /* recipients whose reply is decided */
    bool              is_accepted; /* some recipient got its 250 */
};

enum smtp_file_op {
    SMTP_FILE_NONE,
    SMTP_FILE_OPENING,
    SMTP_FILE_WRITING,
    SMTP_FILE_SYNCING, /* fdatasync at end of data, before the committer */
};

struct smtp_conn {
    struct smtp_session      session;
    struct conn             *conn;
    struct delivery_message *message;     /* this transaction's recipients; owned */
    uint8_t                 *body_buffer; /* from the reactor's pool, or NULL */
    char                     queue_id[SPOOL_QUEUE_ID_BYTES];
    int                      spool_fd;         /* in smtp_listener.spool_dir_fd */
    bool                     is_spool_unnamed; /* O_TMPFILE: nothing to unlink */
    uint64_t                 spool_offset;
    size_t                   write_done;  /* of the current write request */
    enum smtp_file_op        file_op;
    bool                     is_abort_pending; /* discard the file when the op ends */
    uint64_t                 end_of_data_ns;   /* stats_clock_ns() at DELIVER: latency */
    bool                     is_auth_out;       /* a password check runs on a worker */
    bool                     is_auth_fail_delayed; /* its failure waits out login_delay */
    /* postscreen (port 25): the banner held for the greet wait, or a
     * refusal sent instead of the session's output, then close. */
    bool                     is_greet_wait;
    bool                     is_postscreen_closing;
    uint64_t                 greet_wait_start_ns;
    size_t                   postscreen_reply_len;
    size_t                   postscreen_reply_sent;
    /* Fits the 421 with a hostname of up to 140 bytes; a longer one is
     * cut (still one CRLF line): a slot pays for every byte here. */
    char                     postscreen_reply[256];
    /* LMTP: the transaction's recipients, each with its own message;
     * NULL for SMTP and between transactions. */
    bool                     is_lmtp;
    struct lmtp_group       *lmtp;
    /* Waiting for a body buffer (reactor_pools.waiting_*), in FIFO order. */
    bool                     is_waiting_for_buffer;
    struct smtp_conn        *waiting_prev;
    struct smtp_conn        *waiting_next;
};

/* A reactor's pool of body buffers (SPOOL_CHUNK_BYTES each) and of
 * delivery messages, so a message in the steady state allocates nothing.
 * Only its own reactor touches it, so no lock. */
struct reactor_pools {
    uint8_t  *memory;
    uint8_t **free_list;
    uint32_t  free_count;
    uint32_t  capacity;
    struct delivery_message_pool messages;
    struct smtp_conn *waiting_head; /* sessions at DATA/BDAT waiting for a buffer */
    struct smtp_conn *waiting_tail;
    uint32_t          waiting_count;
    uint64_t          waiting_logged_ns;
};

static struct {
    const struct config       *config;
    struct smtp_session_config session_config;    /* port 25 */
    struct smtp_session_config submission_config; /* 587 and 465: AUTH */
    struct smtp_session_config lmtp_config;       /* lmtp_listen */
    struct smtp_session_callbacks callbacks;
    struct reactor_pools          *pools; /* one per reactor */
    uint32_t                   pool_count;
    char                       refusal_text[512];
    struct cidr_list           mynetworks;  /* may relay without AUTH */
    struct route_table        *relay_domains; /* accepted from anyone, passed on inward */
    struct send_limit         *send_limit;  /* submission_messages_per_hour */
    /* The filters every message passes on a worker before delivery
     * (filters/filter_chain); NULL or inactive: straight to delivery. */
    const struct filter_chain *filters;
    bool                       is_spool_unnamed; /* spool_probe_unnamed() at start */
    int                        spool_dir_fd;     /* O_PATH: where spool files are made */
    struct kv                 *kv;         /* main's key-value store (postscreen) */
    struct postscreen         *postscreen; /* port 25 screening; NULL when off */
} smtp_listener;

static void smtp_conn_serve_request(struct smtp_conn *sc);
static int filter_stage_start(struct smtp_conn *sc, struct delivery_message *message);
static void auth_submit(struct smtp_conn *sc);
static int lmtp_rcpt_add(struct smtp_conn *sc, const char *address,
                         struct delivery_message **message_ptr);
static void lmtp_group_unref(struct reactor *reactor, struct lmtp_group **group_ptr);
static void lmtp_part_done(struct reactor *reactor, struct conn *conn,
                           struct delivery_message **message_ptr, const char *reply);
static void message_job_run(struct job *job);
static void message_job_done(struct job *job, struct conn *conn);
static void smtp_conn_count_final_reply(struct smtp_conn *sc, bool is_accepted);
static void sieve_job_run(struct job *job);

/* ---- body buffers ------------------------------------------------------------ */

static struct reactor_pools *
pools_of(struct conn *conn)
{
    uint32_t index = reactor_index(conn_reactor(conn));
    ASSERT(index < smtp_listener.pool_count);
    return &smtp_listener.pools[index];
}

static uint8_t *
body_buffer_take(struct conn *conn)
{
    struct reactor_pools *pool = pools_of(conn);
    if (pool->free_count == 0) {
        return NULL;
    }
    return pool->free_list[--pool->free_count];
}

static void smtp_conn_spool_open(struct smtp_conn *sc);

/* Every buffer busy: the session waits for one, in arrival order, without
 * reading (its client waits for the 354), instead of being refused. */
static void
buffer_wait(struct smtp_conn *sc)
{
    struct reactor_pools *pool = pools_of(sc->conn);
    ASSERT(!sc->is_waiting_for_buffer);
    sc->is_waiting_for_buffer = true;
    sc->waiting_next = NULL;
    sc->waiting_prev = pool->waiting_tail;
    if (pool->waiting_tail != NULL) {
        pool->waiting_tail->waiting_next = sc;
    } else {
        pool->waiting_head = sc;
    }
    pool->waiting_tail = sc;
    pool->waiting_count++;
    uint64_t now = stats_clock_ns();
    if (now - pool->waiting_logged_ns >= UINT64_C(60000000000)) { /* once a minute at most */
        pool->waiting_logged_ns = now;
        log_info("spool buffers all busy on reactor %u; DATA waits for one (raise "
                 "spool_buffers if this is common)",
                 reactor_index(conn_reactor(sc->conn)));
    }
}

static void
buffer_wait_cancel(struct smtp_conn *sc)
{
    if (!sc->is_waiting_for_buffer) {
        return;
    }
    struct reactor_pools *pool = pools_of(sc->conn);
    if (sc->waiting_prev != NULL) {
        sc->waiting_prev->waiting_next = sc->waiting_next;
    } else {
        pool->waiting_head = sc->waiting_next;
    }
    if (sc->waiting_next != NULL) {
        sc->waiting_next->waiting_prev = sc->waiting_prev;
    } else {
        pool->waiting_tail = sc->waiting_prev;
    }
    ASSERT(pool->waiting_count > 0);
    pool->waiting_count--;
    sc->is_waiting_for_buffer = false;
}

static void
body_buffer_give(struct conn *conn, uint8_t **buffer)
{
    if (*buffer == NULL) {
        return;
    }
    struct reactor_pools *pool = pools_of(conn);
    ASSERT(pool->free_count < pool->capacity);
    pool->free_list[pool->free_count++] = *buffer;
    *buffer = NULL;
    /* The longest waiter gets it (starting its open only: no output and no
     * session callback runs here, so any caller may give). */
    if (pool->waiting_head != NULL) {
        struct smtp_conn *next = pool->waiting_head;
        buffer_wait_cancel(next);
        smtp_conn_spool_open(next);
    }
}

/* ---- session callbacks ------------------------------------------------------ */

/* A result with room for the largest expansion, in this thread's arrays
 * (valid until the next call on this thread). */
static struct recipients_result
resolve_result_make(void)
{
    static __thread const char *mailboxes[ALIAS_EXPANSION_MAX];
    static __thread const char *remotes[ALIAS_EXPANSION_MAX];
    return (struct recipients_result){
        .mailboxes = mailboxes,
        .mailbox_capacity = ALIAS_EXPANSION_MAX,
        .remotes = remotes,
        .remote_capacity = ALIAS_EXPANSION_MAX,
    };
}

/* A monotonic clock in seconds for the sending limits. */
static uint64_t
monotonic_seconds(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now); /* cannot fail with this clock */
    return (uint64_t)now.tv_sec;
}

/* A recipient in relay_domains: we are its backup MX or gateway, so it is
 * taken from anyone and queued for its inner host (Postfix's rule). */
static bool
is_relay_domain(const char *address)
{
    const char *at = strrchr(address, '@');
    return at != NULL && smtp_listener.relay_domains != NULL &&
           route_table_is_relay_domain(smtp_listener.relay_domains, at + 1);
}

static enum smtp_rcpt_verdict
smtp_conn_rcpt_decide(void *owner, const struct smtp_rcpt_request *request)
{
    struct smtp_conn *sc = owner;
    const struct smtp_path *path = request->path;
    if (path->has_source_route) {
        return SMTP_RCPT_RELAY_DENIED; /* "@a,@b:user@here" asks us to relay */
    }
    const struct recipients *table = recipients_current();
    ASSERT(table != NULL);
    struct recipients_result result = resolve_result_make();
    if (request->user != NULL &&
        !send_limit_allows(smtp_listener.send_limit, request->user, monotonic_seconds())) {
        return SMTP_RCPT_RATE_LIMITED;
    }
    /* The address as a string, for the queue (the span is not terminated). */
    char address[SMTP_ADDRESS_BYTES_MAX + 1];
    if (path->mailbox.len >= sizeof(address)) {
        return SMTP_RCPT_BAD_SYNTAX;
    }
    memcpy(address, path->mailbox.ptr, path->mailbox.len);
    address[path->mailbox.len] = '\0';
    char orcpt[QUEUE_ORCPT_BYTES] = "";
    if (request->orcpt.len >= sizeof(orcpt)) {
        return SMTP_RCPT_BAD_SYNTAX;
    }
    if (request->orcpt.len > 0) {
        memcpy(orcpt, request->orcpt.ptr, request->orcpt.len);
        orcpt[request->orcpt.len] = '\0';
    }
    switch (recipients_resolve(table, path->mailbox, &result)) {
    case RECIPIENTS_OK:
        break;
    case RECIPIENTS_UNKNOWN_USER:
        return SMTP_RCPT_UNKNOWN_USER;
    case RECIPIENTS_NOT_LOCAL:
        if (sc->is_lmtp) {
            return SMTP_RCPT_RELAY_DENIED; /* LMTP is final delivery: never a relay */
        }
        /* Relaying: for authenticated sessions and the operator's own
         * networks, into the outbound queue; for anyone else, never. */
        if (request->user == NULL &&
            !cidr_list_contains_text(&smtp_listener.mynetworks, conn_peer_text(sc->conn)) &&
            !is_relay_domain(address)) {
            return SMTP_RCPT_RELAY_DENIED;
        }
        result.mailbox_count = 0;
        result.remote_count = 1;
        result.remotes[0] = address;
        break;
    case RECIPIENTS_RELAY_FORM:
        return SMTP_RCPT_RELAY_DENIED;
    case RECIPIENTS_ALIAS_LOOP:
    case RECIPIENTS_TOO_MANY:
        log_warning("alias expansion of <%.*s> failed (loop or too many targets)",
                    (int)path->mailbox.len, path->mailbox.ptr);
        return SMTP_RCPT_TEMPFAIL;
    case RECIPIENTS_SYNTAX:
        return SMTP_RCPT_BAD_SYNTAX;
    }
    if (result.remote_count > 0 && orcpt[0] == '\0' && result.remotes[0] != address) {
        /* Forwarding by a local alias: the original recipient goes with
         * the mail (RFC 3461 4.2), for the DSNs of the remote hops. */
        memcpy(orcpt, "rfc822;", 7);
        if (queue_xtext_encode(address, orcpt + 7, sizeof(orcpt) - 7) < 0) {
            orcpt[0] = '\0';
        }
    }
    /* LMTP: a message of the recipient's own (see lmtp_rcpt_add). */
    struct delivery_message *lmtp_message = NULL;
    struct delivery_message **target = sc->is_lmtp ? &lmtp_message : &sc->message;
    if (*target == NULL) {
        *target = delivery_message_take(&pools_of(sc->conn)->messages);
        if (*target == NULL) {
            return SMTP_RCPT_NO_RESOURCES;
        }
    }
    struct delivery_message *message = *target;
    size_t before = message->mailbox_count;
    size_t remotes_before = message->remote_count;
    for (size_t i = 0; i < result.mailbox_count; i++) {
        if (delivery_message_add_mailbox_for(message, result.mailboxes[i], address) != 0) {
            delivery_message_truncate(message, before);
            delivery_message_give(&pools_of(sc->conn)->messages, &lmtp_message);
            return SMTP_RCPT_NO_RESOURCES;
        }
    }
    for (size_t i = 0; i < result.remote_count && i < ALIAS_EXPANSION_MAX; i++) {
        if (delivery_message_add_remote(message, result.remotes[i], orcpt, request->notify) != 0) {
            delivery_message_truncate(message, before);
            delivery_message_truncate_remotes(message, remotes_before);
            delivery_message_give(&pools_of(sc->conn)->messages, &lmtp_message);
            return SMTP_RCPT_NO_RESOURCES;
        }
    }
    if (lmtp_message != NULL && lmtp_rcpt_add(sc, address, &lmtp_message) != 0) {
        return SMTP_RCPT_NO_RESOURCES;
    }
    return SMTP_RCPT_ACCEPT;
}

/* reject_sender_login_mismatch: the address is the user's own (with or
 * without a subaddress), or an alias that reaches the user. */
static bool
smtp_conn_sender_allowed(void *owner, const char *user, struct span mailbox)
{
    (void)owner;
    const struct recipients *table = recipients_current();
    ASSERT(table != NULL);
    struct recipients_result result = resolve_result_make();
    if (recipients_resolve(table, mailbox, &result) != RECIPIENTS_OK) {
        return false;
    }
    for (size_t i = 0; i < result.mailbox_count && i < ALIAS_EXPANSION_MAX; i++) {
        if (strcmp(result.mailboxes[i], user) == 0) {
            return true;
        }
    }
    return false;
}

/* Metrics: a refusal given to conn's client, by reason (core/stats.h). */
static void
refusal_count(struct conn *conn, const char *reply, enum stats_reason reason)
{
    if (conn != NULL) {
        stats_refusal_count(reactor_stats(conn_reactor(conn)), reply, reason);
    }
}

static enum stats_reason
rcpt_reason(enum smtp_rcpt_verdict verdict)
{
    switch (verdict) {
    case SMTP_RCPT_UNKNOWN_USER:
        return STATS_REASON_RECIPIENT_UNKNOWN;
    case SMTP_RCPT_RELAY_DENIED:
        return STATS_REASON_RELAY_DENIED;
    case SMTP_RCPT_BAD_SYNTAX:
        return STATS_REASON_PROTOCOL;
    case SMTP_RCPT_RATE_LIMITED:
        return STATS_REASON_RATE_LIMIT;
    case SMTP_RCPT_TEMPFAIL:
    case SMTP_RCPT_NO_RESOURCES:
        return STATS_REASON_INTERNAL;
    case SMTP_RCPT_ACCEPT:
        break;
    }
    return STATS_REASON_OTHER;
}

/* The session refused on its own (syntax, sequence, size, AUTH first...):
 * counted by reason like the listener's own refusals. */
static enum stats_reason
session_refusal_reason(enum smtp_refusal why)
{
    switch (why) {
    case SMTP_REFUSAL_PROTOCOL:
        return STATS_REASON_PROTOCOL;
    case SMTP_REFUSAL_SIZE:
        return STATS_REASON_SIZE;
    case SMTP_REFUSAL_AUTH_REQUIRED:
        return STATS_REASON_AUTH_REQUIRED;
    case SMTP_REFUSAL_TLS_REQUIRED:
        return STATS_REASON_TLS_REQUIRED;
    case SMTP_REFUSAL_AUTH_FAILED:
        return STATS_REASON_AUTH_FAILED;
    case SMTP_REFUSAL_SENDER_MISMATCH:
    case SMTP_REFUSAL_HOP_LIMIT:
        return STATS_REASON_POLICY;
    case SMTP_REFUSAL_TOO_MANY_RECIPIENTS:
        return STATS_REASON_TOO_MANY_RECIPIENTS;
    case SMTP_REFUSAL_LOCAL_ERROR:
        return STATS_REASON_INTERNAL;
    case SMTP_REFUSAL_COUNT:
        break;
    }
    return STATS_REASON_OTHER;
}

static void
smtp_conn_refused(void *owner, enum smtp_refusal why, struct span reply)
{
    struct smtp_conn *sc = owner;
    ASSERT(reply.len > 0);
    refusal_count(sc->conn, reply.ptr, session_refusal_reason(why));
}

/* Decide, and log each refusal in the one stable line operators and
 * fail2ban know from Postfix ("NOQUEUE: reject: RCPT from ..."). */
static enum smtp_rcpt_verdict
smtp_conn_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    struct smtp_conn *sc = owner;
    enum smtp_rcpt_verdict verdict = smtp_conn_rcpt_decide(owner, request);
    const char *reply = NULL;
    switch (verdict) {
    case SMTP_RCPT_ACCEPT:
        return verdict;
    case SMTP_RCPT_UNKNOWN_USER:
        reply = "550 5.1.1 Recipient address rejected: User unknown in local recipient table";
        break;
    case SMTP_RCPT_RELAY_DENIED:
        reply = "554 5.7.1 Relay access denied";
        break;
    case SMTP_RCPT_TEMPFAIL:
        reply = "451 4.3.0 Temporary lookup failure";
        break;
    case SMTP_RCPT_BAD_SYNTAX:
        reply = "501 5.1.3 Bad recipient address syntax";
        break;
    case SMTP_RCPT_NO_RESOURCES:
        reply = "452 4.3.1 Insufficient system resources";
        break;
    case SMTP_RCPT_RATE_LIMITED:
        reply = "450 4.7.1 Error: too many messages from this user this hour";
        break;
    }
    refusal_count(sc->conn, reply, rcpt_reason(verdict));
    const struct span to = request->path->mailbox;
    log_info("NOQUEUE: reject: RCPT from [%s]: %s; from=<%s> to=<%.*s> proto=%s helo=<%s>",
             conn_peer_text(sc->conn), reply, sc->session.txn.mail_from,
             (int)(to.len > 256 ? 256 : to.len), to.ptr,
             sc->is_lmtp ? "LMTP" : sc->session.is_esmtp ? "ESMTP" : "SMTP", sc->session.helo);
    return verdict;
}

/* Drop the spool file now, or when the file operation in flight ends. */
static void
smtp_conn_discard_spool(struct smtp_conn *sc)
{
    if (sc->file_op != SMTP_FILE_NONE) {
        sc->is_abort_pending = true;
        return;
    }
    if (sc->spool_fd >= 0) {
        /* A named file is unlinked by its queue id, which the reactor copies. */
        reactor_file_discard(conn_reactor(sc->conn), sc->spool_fd, smtp_listener.spool_dir_fd,
                             sc->is_spool_unnamed ? NULL : sc->queue_id);
    }
    sc->spool_fd = -1;
    sc->spool_offset = 0;
}

static void
smtp_conn_txn_abort(void *owner)
{
    struct smtp_conn *sc = owner;
    smtp_conn_discard_spool(sc);
    if (sc->file_op == SMTP_FILE_NONE) {
        body_buffer_give(sc->conn, &sc->body_buffer);
    }
    if (sc->message != NULL) {
        sc->message->spool_fd = -1; /* the spool file is the session's to discard */
        delivery_message_give(&pools_of(sc->conn)->messages, &sc->message);
    }
    /* LMTP: the recipients not handed over go; those in flight keep the
     * group until their done(). */
    lmtp_group_unref(conn_reactor(sc->conn), &sc->lmtp);
}

/* ---- LMTP: a message per recipient -------------------------------------------- */

/* Drop one hold on the group; the last frees it, with the spool file
 * once delivery has it, and the messages never handed over. On the
 * group's reactor. */
static void
lmtp_group_unref(struct reactor *reactor, struct lmtp_group **group_ptr)
{
    struct lmtp_group *group = *group_ptr;
    *group_ptr = NULL;
    if (group == NULL) {
        return;
    }
    ASSERT(group->refs > 0);
    if (--group->refs > 0) {
        return;
    }
    if (group->spool_fd >= 0) {
        /* Every recipient's message is done with it: their copies are
         * links of their own (or they failed). */
        reactor_file_discard(reactor, group->spool_fd, smtp_listener.spool_dir_fd,
                             group->is_spool_unnamed ? NULL : group->queue_id);
    }
    struct reactor_pools *pools = &smtp_listener.pools[reactor_index(reactor)];
    for (size_t i = 0; i < group->rcpt_count; i++) {
        struct lmtp_rcpt *rcpt = &group->rcpts[i];
        if (rcpt->message != NULL) {
            ASSERT(rcpt->message->spool_fd < 0);
            delivery_message_give(&pools->messages, &rcpt->message);
        }
        free(rcpt->address);
        free(rcpt->reply);
    }
    free(group->rcpts);
    free(group);
}

/* An accepted recipient with its message (taken over, also on failure).
 * Returns 0 or -ENOMEM. */
static int
lmtp_rcpt_add(struct smtp_conn *sc, const char *address, struct delivery_message **message_ptr)
{
    struct reactor_pools *pools = pools_of(sc->conn);
    if (sc->lmtp == NULL) {
        sc->lmtp = calloc(1, sizeof(*sc->lmtp));
        if (sc->lmtp == NULL) {
            delivery_message_give(&pools->messages, message_ptr);
            return -ENOMEM;
        }
        sc->lmtp->refs = 1; /* the connection's, until its last reply is out */
        sc->lmtp->spool_fd = -1;
    }
    struct lmtp_group *group = sc->lmtp;
    char *copy = strdup(address);
    if (copy == NULL || array_grow((void **)&group->rcpts, &group->rcpt_capacity,
                                   group->rcpt_count, sizeof(*group->rcpts)) != 0) {
        free(copy);
        delivery_message_give(&pools->messages, message_ptr);
        return -ENOMEM;
    }
    group->rcpts[group->rcpt_count++] = (struct lmtp_rcpt){
        .message = *message_ptr, .address = copy, .reply = NULL,
    };
    *message_ptr = NULL;
    return 0;
}

/* The session asks for recipient index's reply (in RCPT order). */
static void
lmtp_rcpt_reply(void *owner, uint32_t index, char *reply, size_t reply_bytes)
{
    struct smtp_conn *sc = owner;
    const struct lmtp_group *group = sc->lmtp;
    ASSERT(group != NULL);
    ASSERT(index < group->rcpt_count);
    ASSERT(group->done_count == group->rcpt_count);
    const struct lmtp_rcpt *rcpt = &group->rcpts[index];
    if (rcpt->reply != NULL) {
        (void)snprintf(reply, reply_bytes, "%s", rcpt->reply);
    } else {
        /* Its reply could not be kept (no memory): never a 250 by guess. */
        (void)snprintf(reply, reply_bytes,
                       "451 4.3.0 <%.256s> Error: cannot store the message, try again later",
                       rcpt->address);
    }
}

/* Every recipient's reply is decided: the session gives them out. */
static void
lmtp_replies_ready(struct smtp_conn *sc)
{
    struct lmtp_group *group = sc->lmtp;
    ASSERT(group != NULL && group->done_count == group->rcpt_count);
    smtp_conn_count_final_reply(sc, group->is_accepted);
    smtp_session_delivered_each(&sc->session);
    smtp_conn_serve_request(sc);
}

/* Decide recipient index's reply (a copy of text), count it done. */
static void
lmtp_rcpt_decided(struct lmtp_group *group, size_t index, const char *text)
{
    ASSERT(index < group->rcpt_count);
    struct lmtp_rcpt *rcpt = &group->rcpts[index];
    ASSERT(rcpt->reply == NULL);
    rcpt->reply = strdup(text); /* NULL: lmtp_rcpt_reply answers 451 */
    if (text[0] == '2') {
        group->is_accepted = true;
    }
    group->done_count++;
    ASSERT(group->done_count <= group->rcpt_count);
}

/* The same reply for every recipient not yet decided (a failure before
 * the hand-over: the spool file's sync), then out with them. */
static void
lmtp_answer_all(struct smtp_conn *sc, const char *reply)
{
    struct lmtp_group *group = sc->lmtp;
    ASSERT(group != NULL);
    for (size_t i = 0; i < group->rcpt_count; i++) {
        if (group->rcpts[i].reply == NULL) {
            refusal_count(sc->conn, reply, STATS_REASON_INTERNAL);
            lmtp_rcpt_decided(group, i, reply);
        }
    }
    lmtp_replies_ready(sc);
}

/* One recipient's message is finished: delivered (result 0), failed
 * (result), or refused with reply (a Sieve reject; "451 ..." when it
 * could not go on). Its reply is kept for the session, the message goes
 * back to the pool, and once all are decided the session answers. */
static void
lmtp_part_done(struct reactor *reactor, struct conn *conn, struct delivery_message **message_ptr,
               const char *reply)
{
    struct delivery_message *message = *message_ptr;
    struct lmtp_group *group = message->group;
    ASSERT(group != NULL);
    size_t index = message->group_index;
    ASSERT(index < group->rcpt_count);
    const char *address = group->rcpts[index].address;
    char text[SMTP_REPLY_LINE_BYTES_MAX];
    if (reply != NULL) {
        (void)snprintf(text, sizeof(text), "%s", reply);
        log_info("%s: to=<%s>, relay=local, status=refused (%s) part of %s", message->queue_id,
                 address, reply, group->queue_id);
    } else if (message->result == 0) {
        (void)snprintf(text, sizeof(text), "250 2.0.0 <%.256s> Ok: delivered as %s", address,
                       message->queue_id);
        log_info("%s: to=<%s>, relay=local, size=%llu, status=delivered (%zu mailbox%s%s) "
                 "part of %s",
                 message->queue_id, address, (unsigned long long)message->size,
                 message->delivered_count, message->delivered_count == 1 ? "" : "es",
                 message->queued_count > 0 ? ", forwarded" : "", group->queue_id);
    } else {
        int error = -message->result;
        if (error == EDQUOT) {
            (void)snprintf(text, sizeof(text), "552 5.2.2 <%.256s> Error: mailbox over quota",
                           address);
        } else if (error == ENOSPC) {
            (void)snprintf(text, sizeof(text),
                           "452 4.3.1 <%.256s> Error: insufficient system storage", address);
        } else {
            (void)snprintf(text, sizeof(text),
                           "451 4.3.0 <%.256s> Error: cannot store the message, try again "
                           "later", address);
        }
        /* The client hears it (when still there) as this recipient's line.
         * A refusal given in reply was counted by whoever decided it. */
        refusal_count(conn, text,
                      error == EDQUOT ? STATS_REASON_MAILBOX_FULL : STATS_REASON_INTERNAL);
        log_warning("%s: to=<%s>, relay=local, status=deferred (%s) part of %s",
                    message->queue_id, address, strerror(error), group->queue_id);
    }
    lmtp_rcpt_decided(group, index, text);
    bool is_delivered = reply == NULL && message->result == 0;
    message->group = NULL;
    delivery_message_give(&smtp_listener.pools[reactor_index(reactor)].messages, message_ptr);
    message = NULL;
    struct smtp_conn *sc = conn != NULL ? conn_state(conn) : NULL;
    if (sc != NULL && group->done_count == group->rcpt_count && sc->lmtp == group &&
        sc->session.state == SMTP_STATE_DELIVER) {
        lmtp_replies_ready(sc); /* the session waits in DELIVER for them all */
    } else if (conn == NULL && is_delivered) {
        log_info("client left before the LMTP replies; <%s> is delivered", address);
    }
    lmtp_group_unref(reactor, &group);
}

/* End of data, the spool file synced: each recipient's message goes its
 * own way (Sieve on a worker when on, then the committer), all of them
 * linking the one spool file through fds of their own. */
static void
lmtp_deliver(struct smtp_conn *sc)
{
    const struct smtp_txn *txn = &sc->session.txn;
    struct lmtp_group *group = sc->lmtp;
    ASSERT(group != NULL);
    ASSERT(group->rcpt_count == txn->rcpt_count);
    ASSERT(group->spool_fd < 0);
    struct reactor *reactor = conn_reactor(sc->conn);
    /* The group owns the spool file now. */
    group->spool_fd = sc->spool_fd;
    group->is_spool_unnamed = sc->is_spool_unnamed;
    memcpy(group->queue_id, sc->queue_id, sizeof(group->queue_id));
    uint64_t size = sc->spool_offset;
    ASSERT(size == txn->body_bytes);
    sc->spool_fd = -1;
    sc->spool_offset = 0;
    body_buffer_give(sc->conn, &sc->body_buffer);
    int64_t arrival = (int64_t)time(NULL);
    log_info("%s: from=<%s>, size=%llu, nrcpt=%zu (LMTP: one message per recipient)",
             group->queue_id, txn->mail_from, (unsigned long long)size, group->rcpt_count);
    for (size_t i = 0; i < group->rcpt_count; i++) {
        struct delivery_message *message = group->rcpts[i].message;
        group->rcpts[i].message = NULL;
        ASSERT(message != NULL);
        static_assert(sizeof(message->mail_from) == sizeof(txn->mail_from), "same bound");
        memcpy(message->mail_from, txn->mail_from, sizeof(message->mail_from));
        /* An id of its own: its log lines and any queue entry (an alias
         * or Sieve forwarding) are its alone. */
        spool_queue_id_make(reactor_index(reactor), message->queue_id);
        message->spool_fd = fcntl(group->spool_fd, F_DUPFD_CLOEXEC, 0);
        message->is_spool_unnamed = true; /* linked by fd; the group discards the name */
        message->is_spool_shared = true;
        message->size = size;
        message->rcpt_count = 1;
        message->is_data_synced = smtp_listener.config->fsync;
        message->dsn_ret = txn->dsn_ret == SMTP_DSN_RET_FULL   ? QUEUE_RET_FULL
                           : txn->dsn_ret == SMTP_DSN_RET_HDRS ? QUEUE_RET_HDRS
                                                               : QUEUE_RET_UNSPECIFIED;
        static_assert(sizeof(message->dsn_envid) == sizeof(txn->dsn_envid), "same bound");
        memcpy(message->dsn_envid, txn->dsn_envid, sizeof(message->dsn_envid));
        message->user[0] = '\0';
        message->arrival = arrival;
        message->group = group;
        message->group_index = (uint32_t)i;
        group->refs++;
        if (message->spool_fd < 0) {
            log_error("%s: cannot open the spool file again for <%s>: %s", group->queue_id,
                      group->rcpts[i].address, strerror(errno));
            refusal_count(sc->conn, "451", STATS_REASON_INTERNAL);
            lmtp_part_done(reactor, NULL, &message,
                           "451 4.3.0 Error: server busy, try again later");
            continue;
        }
        message->job.run = message_job_run;
        message->job.done = message_job_done;
        if (sieve_stage_is_active() && message->mailbox_count > 0) {
            message->job.run = sieve_job_run; /* reads files: a worker */
            if (conn_job_submit(sc->conn, &message->job) != 0) {
                log_warning("%s: worker queue full, deferring <%s>", message->queue_id,
                            group->rcpts[i].address);
                reactor_file_discard(reactor, message->spool_fd, -1, NULL);
                message->spool_fd = -1;
                refusal_count(sc->conn, "451", STATS_REASON_INTERNAL);
                lmtp_part_done(reactor, NULL, &message,
                               "451 4.3.0 Error: server busy, try again later");
            }
            continue;
        }
        conn_job_hold(sc->conn, &message->job);
        delivery_submit(message);
    }
    if (group->done_count == group->rcpt_count) {
        lmtp_replies_ready(sc); /* none could go */
    }
}

/* ---- the message job ------------------------------------------------------------ */

static void
message_job_run(struct job *job)
{
    struct delivery_message *message = (struct delivery_message *)job;
    delivery_submit(message);
}

/* Count the final reply to a complete message on this reactor, with the
 * time it took since the end of data (`toasterctl stats`). */
static void
smtp_conn_count_final_reply(struct smtp_conn *sc, bool is_accepted)
{
    struct reactor_stats *stats = reactor_stats(conn_reactor(sc->conn));
    stats_add(is_accepted ? &stats->messages_accepted : &stats->messages_refused, 1);
    histogram_record(&stats->latency_us, (stats_clock_ns() - sc->end_of_data_ns) / 1000);
}

static void
message_job_done(struct job *job, struct conn *conn)
{
    struct delivery_message *message = (struct delivery_message *)job;
    if (message->group != NULL) {
        /* One LMTP recipient's outcome. */
        lmtp_part_done(reactor_current(), conn, &message, NULL);
        return;
    }
    char reply[256];
    if (message->result == 0) {
        log_info("%s: from=<%s>, size=%llu, nrcpt=%u, status=delivered (%zu mailbox%s%s%s)",
                 message->queue_id, message->mail_from, (unsigned long long)message->size,
                 message->rcpt_count, message->delivered_count,
                 message->delivered_count == 1 ? "" : "es",
                 message->queued_count > 0 ? ", queued for " : "",
                 message->queued_count == 0           ? ""
                 : message->queued_count == 1         ? "1 remote recipient"
                                                      : "remote recipients");
        (void)snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", message->queue_id);
    } else {
        log_warning("%s: from=<%s>, size=%llu, nrcpt=%u, status=deferred (%s)",
                    message->queue_id, message->mail_from, (unsigned long long)message->size,
                    message->rcpt_count, strerror(-message->result));
        (void)snprintf(reply, sizeof(reply),
                       "451 4.3.0 Error: cannot store the message, try again later");
    }
    if (conn != NULL) {
        struct smtp_conn *sc = conn_state(conn);
        if (message->result != 0) {
            refusal_count(conn, reply, STATS_REASON_INTERNAL);
        }
        smtp_conn_count_final_reply(sc, message->result == 0);
        smtp_session_delivered(&sc->session, reply);
        smtp_conn_serve_request(sc);
    } else if (message->result == 0) {
        log_info("%s: client left before the reply; the message is delivered",
                 message->queue_id);
    }
    if (message->result == 0 && message->user[0] != '\0') {
        send_limit_count(smtp_listener.send_limit, message->user, monotonic_seconds());
    }
    /* Done runs on the reactor that took the message from its pool. */
    struct reactor *reactor = reactor_current();
    ASSERT(reactor != NULL);
    delivery_message_give(&smtp_listener.pools[reactor_index(reactor)].messages, &message);
}

/* ---- From: of authenticated mail: read on a worker, judged here ------------ */

/* What the worker found in the header block (owner_data of the message). */
struct from_check {
    int                     read_error; /* -errno of the spool read, or 0 */
    bool                    is_header_too_large;
    enum smtp_from_status   status;
    struct smtp_from_result result;
};

/* The header block is read up to this much; a longer one is refused. */
#define FROM_CHECK_READ_BYTES (256u * 1024u)

static void
from_job_run(struct job *job)
{
    struct delivery_message *message = (struct delivery_message *)job;
    struct from_check *check = calloc(1, sizeof(*check));
    size_t want = message->size < FROM_CHECK_READ_BYTES ? (size_t)message->size
                                                         : FROM_CHECK_READ_BYTES;
    char *bytes = malloc(want + 1);
    if (check == NULL || bytes == NULL) {
        free(check);
        free(bytes);
        message->owner_data = NULL; /* done answers 451 */
        reactor_job_complete(job);
        return;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(message->spool_fd, bytes + got, want - got, (off_t)got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            check->read_error = n < 0 ? -errno : -EIO;
            break;
        }
        got += (size_t)n;
    }
    if (check->read_error == 0) {
        size_t header_len = smtp_from_header_length(bytes, got);
        if (header_len == 0 && got < message->size) {
            check->is_header_too_large = true;
        } else {
            check->status = smtp_from_extract(bytes, header_len > 0 ? header_len : got,
                                              &check->result);
        }
    }
    free(bytes);
    message->owner_data = check;
    reactor_job_complete(job);
}

/* The verdict on a checked message: NULL to deliver it, or the reply. */
static const char *
from_check_verdict(struct smtp_conn *sc, const struct delivery_message *message,
                   const struct from_check *check, char *reply, size_t reply_bytes)
{
    if (check == NULL || check->read_error != 0) {
        log_error("%s: cannot read the header for the From: check: %s", message->queue_id,
                  strerror(check == NULL ? ENOMEM : -check->read_error));
        return "451 4.3.0 Error: cannot store the message, try again later";
    }
    if (check->is_header_too_large) {
        return "552 5.3.4 Error: message header too large";
    }
    switch (check->status) {
    case SMTP_FROM_ABSENT:
        return NULL; /* as Postfix: a submission without From: is accepted */
    case SMTP_FROM_SYNTAX:
        (void)snprintf(reply, reply_bytes,
                       "553 5.7.1 From: header cannot be read, so it cannot be checked "
                       "against user %s", message->user);
        return reply;
    case SMTP_FROM_TOO_MANY:
        return "553 5.7.1 Error: too many From: addresses";
    case SMTP_FROM_OK:
        break;
    }
    for (size_t i = 0; i < check->result.count; i++) {
        const char *address = check->result.addresses[i];
        if (!smtp_conn_sender_allowed(sc, message->user,
                                      span_make(address, strlen(address)))) {
            log_info("%s: reject: From: <%s> not owned by user %s", message->queue_id,
                     address, message->user);
            (void)snprintf(reply, reply_bytes, "553 5.7.1 From: address not owned by user %s",
                           message->user);
            return reply;
        }
    }
    return NULL;
}

/* Reactor: the message is refused, deferred, or its client left:
 * nothing of it is delivered or queued. Its spool file goes, the client
 * (when still there) hears reply, and the message goes back to the pool.
 * filters_summary: the filters' account for the log line, or NULL. */
static void
message_refuse(struct reactor *reactor, struct conn *conn, struct delivery_message **message_ptr,
               const char *reply, const char *filters_summary)
{
    struct delivery_message *message = *message_ptr;
    reactor_file_discard(reactor, message->spool_fd, smtp_listener.spool_dir_fd,
                         message->is_spool_unnamed ? NULL : message->queue_id);
    message->spool_fd = -1;
    message->result = 0;
    if (message->group != NULL) {
        /* One LMTP recipient refused (a Sieve reject) or deferred; its fd
         * of the shared spool file is closed, the file stays. */
        lmtp_part_done(reactor, conn, message_ptr, reply);
        return;
    }
    if (conn != NULL) {
        struct smtp_conn *sc = conn_state(conn);
        log_info("%s: from=<%s>, nrcpt=%u, status=refused (%s)%s%s", message->queue_id,
                 message->mail_from, message->rcpt_count, reply,
                 filters_summary != NULL ? " filters: " : "",
                 filters_summary != NULL ? filters_summary : "");
        smtp_conn_count_final_reply(sc, false);
        smtp_session_delivered(&sc->session, reply);
        smtp_conn_serve_request(sc);
    }
    delivery_message_give(&smtp_listener.pools[reactor_index(reactor)].messages, message_ptr);
}

static void
from_job_done(struct job *job, struct conn *conn)
{
    struct delivery_message *message = (struct delivery_message *)job;
    struct from_check *check = message->owner_data;
    message->owner_data = NULL;
    struct reactor *reactor = reactor_current();
    ASSERT(reactor != NULL);
    char reply_text[SMTP_REPLY_LINE_BYTES_MAX];
    const char *reply = "451 4.3.0 Error: cannot store the message, try again later";
    if (conn != NULL) {
        reply = from_check_verdict(conn_state(conn), message, check, reply_text,
                                   sizeof(reply_text));
    }
    free(check);
    if (conn != NULL && reply == NULL) {
        /* Its own: on through the filters, or to the committer, which
         * completes it to this reactor. */
        struct smtp_conn *sc = conn_state(conn);
        if (filter_stage_start(sc, message) == 0) {
            return;
        }
        reply = "451 4.3.0 Error: server busy, try again later";
    }
    refusal_count(conn, reply, reply[0] == '4'                ? STATS_REASON_INTERNAL
                               : strncmp(reply, "552", 3) == 0 ? STATS_REASON_SIZE
                                                               : STATS_REASON_POLICY);
    message_refuse(reactor, conn, &message, reply, NULL);
}

/* ---- the filters: on a worker, reruns when DNS answers arrive --------------- */

/* The filters' state of a message (owner_data while the stage runs). */
struct message_filters {
    struct filter_run *run;
    bool is_waiting; /* done() was reached for a rerun, not a verdict */
};

static void filter_job_run(struct job *job);
static void filter_job_done(struct job *job, struct conn *conn);
static void sieve_then_deliver(struct delivery_message *message, bool is_virus_scanned);
static void sieve_job_run(struct job *job);

/* "IPv6:2001:db8::1" (the Received form) -> "2001:db8::1". */
static const char *
client_address_plain(const char *peer)
{
    return strncmp(peer, "IPv6:", 5) == 0 ? peer + 5 : peer;
}

/* The message leaves for the filters, or, when none is configured,
 * straight for the committer (which completes the job to this reactor:
 * two thread hand-offs fewer per message). Returns 0, or -errno when
 * the message could not go (the caller answers 451). */
static int
filter_stage_start(struct smtp_conn *sc, struct delivery_message *message)
{
    message->job.run = message_job_run;
    message->job.done = message_job_done;
    if (!filter_chain_is_active(smtp_listener.filters)) {
        if (sieve_stage_is_active() && message->mailbox_count > 0) {
            /* Sieve reads files: a worker hop first (relayed mail has no
             * mailbox, so no script to run). */
            message->job.run = sieve_job_run;
            int rc = conn_job_submit(sc->conn, &message->job);
            if (rc != 0) {
                message->job.run = message_job_run;
            }
            return rc;
        }
        conn_job_hold(sc->conn, &message->job);
        delivery_submit(message);
        return 0;
    }
    struct message_filters *stage = calloc(1, sizeof(*stage));
    if (stage == NULL) {
        return -ENOMEM;
    }
    /* Recipients as the spam filter sees them (greylisting, rate limits):
     * local mailboxes, then remote addresses. */
    const char *rcpts[FILTER_RCPTS_MAX];
    uint32_t rcpt_count = 0;
    for (size_t i = 0; i < message->mailbox_count && rcpt_count < FILTER_RCPTS_MAX; i++) {
        rcpts[rcpt_count++] = delivery_message_mailbox(message, i);
    }
    for (size_t i = 0; i < message->remote_count && rcpt_count < FILTER_RCPTS_MAX; i++) {
        rcpts[rcpt_count++] = delivery_message_remote(message, i);
    }
    struct filter_envelope envelope = {
        .queue_id = message->queue_id,
        .client_address = client_address_plain(conn_peer_text(sc->conn)),
        .helo = sc->session.helo,
        .mail_from = message->mail_from,
        .user = message->user,
        .is_trusted_network =
            cidr_list_contains_text(&smtp_listener.mynetworks, conn_peer_text(sc->conn)),
        .rcpts = rcpts,
        .rcpt_count = rcpt_count,
    };
    int rc = filter_run_create(smtp_listener.filters, &envelope, &stage->run);
    if (rc == 0) {
        message->owner_data = stage;
        message->job.run = filter_job_run;
        message->job.done = filter_job_done;
        rc = conn_job_submit(sc->conn, &message->job);
    }
    if (rc != 0) {
        filter_run_destroy(&stage->run);
        free(stage);
        message->owner_data = NULL;
        message->job.run = message_job_run;
        message->job.done = message_job_done;
    }
    return rc;
}

/* The resolver thread: the answers a run waited for are in. */
static void
filter_job_ready(void *arg)
{
    struct delivery_message *message = arg;
    reactor_job_complete(&message->job);
}

static void
filter_job_run(struct job *job)
{
    struct delivery_message *message = (struct delivery_message *)job;
    struct message_filters *stage = message->owner_data;
    int rc;
    while ((rc = filter_run_step(stage->run, message->spool_fd, message->size)) == -EINPROGRESS) {
        if (filter_run_wait(stage->run, filter_job_ready, message)) {
            stage->is_waiting = true; /* done() resubmits once ready */
            return;
        }
    }
    const struct filter_verdict *verdict = filter_run_verdict(stage->run);
    if (verdict->action == FILTER_ACCEPT) {
        struct spool_edit edits[FILTER_EDITS_MAX];
        static_assert(FILTER_EDITS_MAX <= SPOOL_EDITS_MAX, "every edit fits");
        for (size_t i = 0; i < verdict->edit_count; i++) {
            edits[i] = (struct spool_edit){
                .offset = verdict->edits[i].offset,
                .delete_len = verdict->edits[i].delete_len,
                .bytes = verdict->edits[i].bytes,
                .len = verdict->edits[i].len,
            };
        }
        rc = spool_rewrite(smtp_listener.spool_dir_fd, message->is_spool_unnamed,
                           message->queue_id, &message->spool_fd, &message->size, edits,
                           verdict->edit_count);
        if (rc == 0 && verdict->is_quarantined) {
            /* Into the quarantine mailbox, and nowhere else. */
            delivery_message_truncate(message, 0);
            delivery_message_truncate_remotes(message, 0);
            rc = delivery_message_add_mailbox(message, smtp_listener.config->quarantine_mailbox);
        }
        if (rc == 0) {
            if (verdict->edit_count > 0) {
                message->is_data_synced = false; /* a new file: the committer syncs it */
            }
            log_info("%s: filters: %s", message->queue_id, verdict->summary);
            bool is_quarantined = verdict->is_quarantined;
            bool is_virus_scanned = verdict->is_virus_scanned;
            filter_run_destroy(&stage->run);
            free(stage);
            message->owner_data = NULL;
            message->job.run = message_job_run;
            message->job.done = message_job_done;
            if (is_quarantined) {
                delivery_submit(message); /* the quarantine runs no user's script */
            } else {
                /* Whether ClamAV scanned it: not our own users' mail. */
                sieve_then_deliver(message, is_virus_scanned);
            }
            return;
        }
        log_error("%s: cannot add the filters' header fields: %s", message->queue_id,
                  strerror(-rc));
        message->result = rc; /* the reactor answers 451 (filter_job_done) */
    }
    reactor_job_complete(job);
}

static void
filter_job_done(struct job *job, struct conn *conn)
{
    struct delivery_message *message = (struct delivery_message *)job;
    struct message_filters *stage = message->owner_data;
    struct reactor *reactor = reactor_current();
    ASSERT(reactor != NULL && stage != NULL);
    if (stage->is_waiting && conn != NULL) {
        stage->is_waiting = false;
        if (conn_job_submit(conn, job) == 0) {
            return; /* the rerun, with the answers in the cache */
        }
        log_warning("%s: worker queue full, deferring", message->queue_id);
        message->result = -EAGAIN;
    }
    const struct filter_verdict *verdict = filter_run_verdict(stage->run);
    const char *reply = message->result != 0 || stage->is_waiting
                            ? "451 4.3.0 Error: server busy, try again later"
                            : verdict->reply;
    message->owner_data = NULL;
    refusal_count(conn, reply, reply != verdict->reply ? STATS_REASON_INTERNAL : verdict->reason);
    message_refuse(reactor, conn, &message, reply, verdict->summary);
    filter_run_destroy(&stage->run); /* after: reply and summary live in the run */
    free(stage);
}

/* ---- the Sieve stage: on a worker, back here only to resolve or refuse ---- */

/* What the stage hands back to the reactor (owner_data). */
struct message_sieve {
    struct sieve_stage   *stage;
    enum sieve_stage_next next;
    char                  reply[SMTP_REPLY_LINE_BYTES_MAX];
};

static void sieve_job_done(struct job *job, struct conn *conn);

/* Worker: the Sieve stage when it is on, then the committer (which
 * completes the job to the reactor); back to the reactor first when
 * addresses must be resolved or the message was refused. */
static void
sieve_then_deliver(struct delivery_message *message, bool is_virus_scanned)
{
    message->job.run = message_job_run;
    message->job.done = message_job_done;
    if (!sieve_stage_is_active()) {
        delivery_submit(message);
        return;
    }
    struct message_sieve *hop = calloc(1, sizeof(*hop));
    if (hop == NULL) {
        log_error("%s: sieve: %s", message->queue_id, strerror(ENOMEM));
        message->owner_data = NULL; /* done answers 451 */
        message->job.done = sieve_job_done;
        reactor_job_complete(&message->job);
        return;
    }
    hop->next = sieve_stage_run(message, is_virus_scanned, &hop->stage, hop->reply,
                                sizeof(hop->reply));
    if (hop->next == SIEVE_STAGE_SUBMIT) {
        free(hop);
        delivery_submit(message); /* completes to the reactor when durable */
        return;
    }
    message->owner_data = hop;
    message->job.done = sieve_job_done;
    reactor_job_complete(&message->job);
}

static void
sieve_job_run(struct job *job)
{
    sieve_then_deliver((struct delivery_message *)job, false);
}

static void
sieve_job_done(struct job *job, struct conn *conn)
{
    struct delivery_message *message = (struct delivery_message *)job;
    struct message_sieve *hop = message->owner_data;
    message->owner_data = NULL;
    struct reactor *reactor = reactor_current();
    ASSERT(reactor != NULL);
    const char *reply = "451 4.3.0 Error: cannot store the message, try again later";
    if (hop != NULL && hop->next == SIEVE_STAGE_RESOLVE && conn != NULL) {
        /* The tables may be read here, on the reactor, in this turn. */
        if (sieve_stage_resolve(hop->stage, message, recipients_current()) == 0) {
            sieve_stage_attach(&hop->stage, message);
            sieve_stage_release(&hop->stage); /* only if the hook could not be set */
            free(hop);
            message->job.run = message_job_run;
            message->job.done = message_job_done;
            conn_job_hold(conn, &message->job);
            delivery_submit(message);
            return;
        }
    } else if (hop != NULL && hop->next == SIEVE_STAGE_REFUSE) {
        reply = hop->reply;
    }
    refusal_count(conn, reply, reply[0] == '4' ? STATS_REASON_INTERNAL : STATS_REASON_POLICY);
    message_refuse(reactor, conn, &message, reply, NULL);
    if (hop != NULL) { /* after: reply may be hop->reply */
        sieve_stage_release(&hop->stage);
        free(hop);
    }
}

static void
smtp_conn_deliver(struct smtp_conn *sc)
{
    if (sc->is_lmtp) {
        lmtp_deliver(sc);
        return;
    }
    const struct smtp_txn *txn = &sc->session.txn;
    struct delivery_message *message = sc->message;
    ASSERT(message != NULL);
    ASSERT(sc->spool_fd >= 0);
    ASSERT(sc->file_op == SMTP_FILE_NONE);
    static_assert(sizeof(message->mail_from) == sizeof(txn->mail_from), "same bound");
    memcpy(message->mail_from, txn->mail_from, sizeof(message->mail_from));
    memcpy(message->queue_id, sc->queue_id, sizeof(message->queue_id));
    message->is_spool_unnamed = sc->is_spool_unnamed;
    message->spool_fd = sc->spool_fd;
    message->size = sc->spool_offset;
    ASSERT(message->size == txn->body_bytes);
    message->rcpt_count = txn->rcpt_count;
    message->is_data_synced = smtp_listener.config->fsync;
    message->job.run = message_job_run;
    message->job.done = message_job_done;
    /* What an outbound queue entry records. */
    message->dsn_ret = txn->dsn_ret == SMTP_DSN_RET_FULL   ? QUEUE_RET_FULL
                       : txn->dsn_ret == SMTP_DSN_RET_HDRS ? QUEUE_RET_HDRS
                                                           : QUEUE_RET_UNSPECIFIED;
    static_assert(sizeof(message->dsn_envid) == sizeof(txn->dsn_envid), "same bound");
    memcpy(message->dsn_envid, txn->dsn_envid, sizeof(message->dsn_envid));
    (void)snprintf(message->user, sizeof(message->user), "%s", smtp_session_user(&sc->session));
    message->arrival = (int64_t)time(NULL);
    bool is_from_checked = message->user[0] != '\0';
    if (is_from_checked) {
        /* Submission policy: the From: header must be the user's too. The
         * header is read on a worker (the reactor never waits on disk)
         * and judged back here, where the tables may be read. */
        message->job.run = from_job_run;
        message->job.done = from_job_done;
    }
    int rc = is_from_checked ? conn_job_submit(sc->conn, &message->job)
                             : filter_stage_start(sc, message);
    if (rc != 0) {
        log_warning("%s: worker queue full, deferring", sc->queue_id);
        message->spool_fd = -1;
        /* The session's txn_abort (after this reply) discards the spool. */
        refusal_count(sc->conn, "451", STATS_REASON_INTERNAL);
        smtp_conn_count_final_reply(sc, false);
        smtp_session_delivered(&sc->session, "451 4.3.0 Error: server busy, try again later");
        return;
    }
    /* The job owns the message and its spool file now. */
    sc->message = NULL;
    sc->spool_fd = -1;
    sc->spool_offset = 0;
    body_buffer_give(sc->conn, &sc->body_buffer);
}

/* A body buffer and the spool file's open, for a session at DATA/BDAT. */
static void
smtp_conn_spool_open(struct smtp_conn *sc)
{
    sc->body_buffer = body_buffer_take(sc->conn);
    ASSERT(sc->body_buffer != NULL);
    spool_queue_id_make(reactor_index(conn_reactor(sc->conn)), sc->queue_id);
    sc->is_spool_unnamed = smtp_listener.is_spool_unnamed;
    sc->file_op = SMTP_FILE_OPENING;
    /* Read-write: delivery may have to copy from it (another file system
     * under a Maildir). A named file is called by its queue id, which lives
     * in the slot until the open completes. */
    conn_file_openat(sc->conn, smtp_listener.spool_dir_fd,
                     sc->is_spool_unnamed ? "." : sc->queue_id,
                     (sc->is_spool_unnamed ? O_TMPFILE : O_CREAT | O_EXCL) | O_RDWR | O_CLOEXEC,
                     0600);
}

/* Start whatever the session asked for. */
static void
smtp_conn_serve_request(struct smtp_conn *sc)
{
    switch (smtp_session_take_request(&sc->session)) {
    case SMTP_REQUEST_NONE:
        return;
    case SMTP_REQUEST_AUTH:
        auth_submit(sc);
        return;
    case SMTP_REQUEST_STARTTLS: {
        /* Offered only where the listener has TLS, so it cannot fail. */
        int rc = conn_tls_start(sc->conn);
        ASSERT(rc == 0);
        smtp_session_tls_started(&sc->session);
        return;
    }
    case SMTP_REQUEST_SPOOL_OPEN: {
        const char *version;
        const char *cipher;
        int bits;
        if (conn_tls_describe(sc->conn, &version, &cipher, &bits)) {
            smtp_session_tls_describe(&sc->session, version, cipher, bits);
        }
        ASSERT(sc->spool_fd < 0);
        ASSERT(sc->body_buffer == NULL);
        if (pools_of(sc->conn)->free_count == 0) {
            buffer_wait(sc);
            return;
        }
        smtp_conn_spool_open(sc);
        return;
    }
    case SMTP_REQUEST_SPOOL_WRITE: {
        struct span body = smtp_session_body(&sc->session);
        ASSERT(body.len > 0);
        ASSERT(sc->spool_fd >= 0);
        sc->file_op = SMTP_FILE_WRITING;
        sc->write_done = 0;
        conn_file_write(sc->conn, sc->spool_fd, body.ptr, body.len, sc->spool_offset);
        return;
    }
    case SMTP_REQUEST_DELIVER:
        sc->end_of_data_ns = stats_clock_ns();
        if (!smtp_listener.config->fsync) {
            smtp_conn_deliver(sc);
            return;
        }
        /* The bytes go to disk now, from here, while the committer works
         * on earlier messages: its batch is then only links and directory
         * syncs, and this message waits for one batch, not two. */
        sc->file_op = SMTP_FILE_SYNCING;
        conn_file_sync(sc->conn, sc->spool_fd);
        return;
    }
}

/* ---- postscreen (port 25) ------------------------------------------------ */

/* Send reply (a refusal) instead of anything the session queued, then
 * close; the session never sees another byte. */
static void
smtp_conn_postscreen_refuse(struct smtp_conn *sc, enum postscreen_verdict verdict)
{
    sc->is_greet_wait = false;
    sc->is_postscreen_closing = true;
    sc->postscreen_reply_len =
        postscreen_reply(verdict, conn_peer_text(sc->conn), smtp_listener.config->myhostname,
                         sc->postscreen_reply, sizeof(sc->postscreen_reply));
    sc->postscreen_reply_sent = 0;
    /* A client refused before the banner: denied by the access list, over
     * the connection rate, or talking before its turn (a pregreet). */
    refusal_count(sc->conn, sc->postscreen_reply,
                  verdict == POSTSCREEN_LIMIT  ? STATS_REASON_RATE_LIMIT
                  : verdict == POSTSCREEN_TEST ? STATS_REASON_PROTOCOL
                                               : STATS_REASON_POLICY);
}

/* Seconds since the greet wait began, for the log. */
static double
smtp_conn_greet_wait_seconds(const struct smtp_conn *sc)
{
    return (double)(stats_clock_ns() - sc->greet_wait_start_ns) / 1e9;
}

/* A new port 25 connection: decide before the banner. */
static void
smtp_conn_postscreen_open(struct smtp_conn *sc)
{
    const char *client = conn_peer_text(sc->conn);
    struct postscreen_decision decision = postscreen_decide(smtp_listener.postscreen, client);
    if (decision.kv_error == -EAGAIN) {
        /* Redis: not in the local cache yet (fetched meanwhile), or down. */
        log_debug("postscreen: key-value store (%s) has no answer yet; [%s] taken as unknown",
                  kv_backend_name(smtp_listener.kv), client);
    } else if (decision.kv_error != 0) {
        log_warning("postscreen: key-value store (%s): %s; [%s] taken as unknown",
                    kv_backend_name(smtp_listener.kv), strerror(-decision.kv_error), client);
    }
    switch (decision.verdict) {
    case POSTSCREEN_PASS:
        if (decision.reason == POSTSCREEN_REASON_PASS_OLD) {
            log_info("postscreen: PASS OLD [%s]", client);
        }
        return;
    case POSTSCREEN_PERMIT:
        log_info("postscreen: ALLOWLISTED [%s]", client);
        return;
    case POSTSCREEN_REJECT:
        log_info("postscreen: %s [%s]", postscreen_reason_name(decision.reason), client);
        smtp_conn_postscreen_refuse(sc, POSTSCREEN_REJECT);
        return;
    case POSTSCREEN_LIMIT:
        log_info("postscreen: NOQUEUE: reject: CONNECT from [%s]: too many connections "
                 "(%llu in the last minute)",
                 client, (unsigned long long)decision.rate_count);
        smtp_conn_postscreen_refuse(sc, POSTSCREEN_LIMIT);
        return;
    case POSTSCREEN_TEST:
        sc->is_greet_wait = true;
        sc->greet_wait_start_ns = stats_clock_ns();
        conn_timer_start(sc->conn, postscreen_config(smtp_listener.postscreen)->greet_wait_ms);
        return;
    }
}

/* The client talked before the banner: a bot that does not wait for its
 * turn. Remember it, answer as Postfix's postscreen does, and close. */
static void
smtp_conn_pregreet(struct smtp_conn *sc, const uint8_t *bytes, size_t len)
{
    const char *client = conn_peer_text(sc->conn);
    /* What it said, escaped and cut short: the log line stays one line. */
    char said[64];
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < sizeof(said); i++) {
        uint8_t c = bytes[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            said[n++] = (char)c;
        } else {
            n += (size_t)snprintf(said + n, sizeof(said) - n, "\\x%02x", c);
        }
    }
    said[n] = '\0';
    log_info("postscreen: PREGREET %zu after %.2f from [%s]: %s", len,
             smtp_conn_greet_wait_seconds(sc), client, said);
    int rc = postscreen_pregreet(smtp_listener.postscreen, client);
    if (rc != 0) {
        log_warning("postscreen: cannot remember [%s] as bad: %s", client, strerror(-rc));
    }
    smtp_conn_postscreen_refuse(sc, POSTSCREEN_TEST);
}

/* The greet wait is over and the client kept quiet: remember it as good
 * and let the banner out. */
static void
smtp_conn_greet_wait_over(struct smtp_conn *sc)
{
    const char *client = conn_peer_text(sc->conn);
    sc->is_greet_wait = false;
    log_info("postscreen: PASS NEW [%s]", client);
    int rc = postscreen_passed(smtp_listener.postscreen, client);
    if (rc != 0) {
        log_warning("postscreen: cannot remember [%s] as good: %s", client, strerror(-rc));
    }
}

/* ---- handler ------------------------------------------------------------ */

static void
smtp_conn_open(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    sc->conn = conn;
    sc->spool_fd = -1;
    int protocol = conn_listener_protocol(conn);
    bool is_submission = protocol == LISTENER_SUBMISSION || protocol == LISTENER_SUBMISSIONS;
    sc->is_lmtp = protocol == LISTENER_LMTP;
    smtp_session_init(&sc->session,
                      sc->is_lmtp     ? &smtp_listener.lmtp_config
                      : is_submission ? &smtp_listener.submission_config
                                      : &smtp_listener.session_config,
                      &smtp_listener.callbacks, sc, conn_peer_text(conn));
    /* LMTP offers neither TLS nor AUTH: the front end is trusted, on
     * loopback or a Unix socket (the operator binds it there). */
    smtp_session_set_transport(&sc->session, !sc->is_lmtp && conn_tls_can_start(conn),
                               conn_is_tls(conn),
                               smtp_listener.config->loopback_is_secure &&
                                   conn_peer_is_loopback(conn));
    log_info("connect from [%s]", conn_peer_text(conn));
    if (protocol == LISTENER_SMTP && smtp_listener.postscreen != NULL) {
        smtp_conn_postscreen_open(sc); /* never on submission ports */
    }
}

static size_t
smtp_conn_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_greet_wait) {
        smtp_conn_pregreet(sc, bytes, len);
        return len; /* never parsed */
    }
    if (sc->is_postscreen_closing) {
        return len;
    }
    size_t used = smtp_session_feed(&sc->session, bytes, len);
    smtp_conn_serve_request(sc);
    return used;
}

static bool
smtp_conn_wants_input(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_greet_wait) {
        return true; /* listen for a pregreet while the banner is held */
    }
    return smtp_session_wants_input(&sc->session);
}

static uint32_t
smtp_conn_read_timeout_ms(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_greet_wait) {
        /* The receive armed now outlives the wait: the idle time starts
         * when the banner goes out. */
        uint64_t ms = (uint64_t)postscreen_config(smtp_listener.postscreen)->greet_wait_ms +
                      smtp_listener.config->smtp_idle_timeout_ms;
        return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
    }
    return smtp_session_is_receiving_body(&sc->session)
               ? smtp_listener.config->smtp_data_timeout_ms
               : smtp_listener.config->smtp_idle_timeout_ms;
}

static struct span
smtp_conn_pending_output(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_postscreen_closing) {
        return span_make(sc->postscreen_reply + sc->postscreen_reply_sent,
                         sc->postscreen_reply_len - sc->postscreen_reply_sent);
    }
    if (sc->is_greet_wait) {
        return span_make(sc->postscreen_reply, 0); /* the banner is held */
    }
    return smtp_session_output(&sc->session);
}

static void
smtp_conn_output_sent(struct conn *conn, size_t bytes)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_postscreen_closing) {
        ASSERT(bytes <= sc->postscreen_reply_len - sc->postscreen_reply_sent);
        sc->postscreen_reply_sent += bytes;
        return;
    }
    smtp_session_output_sent(&sc->session, bytes);
}

static bool
smtp_conn_is_closing(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    return sc->is_postscreen_closing || smtp_session_is_closing(&sc->session);
}

static void
smtp_conn_timeout(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    log_info("timeout after %s from [%s]", smtp_state_name(sc->session.state),
             conn_peer_text(conn));
    smtp_session_timeout(&sc->session);
}

static void
smtp_conn_shutdown(struct conn *conn, bool is_forced)
{
    struct smtp_conn *sc = conn_state(conn);
    if (!is_forced) {
        /* A client in its greet wait gets the banner and the 421 at once,
         * judged neither good nor bad. */
        sc->is_greet_wait = false;
        smtp_session_shutdown(&sc->session);
        smtp_conn_serve_request(sc);
    } else {
        log_info("shutdown deadline: dropping [%s] in state %s", conn_peer_text(conn),
                 smtp_state_name(sc->session.state));
    }
}

static void
smtp_conn_file_done(struct conn *conn, int result)
{
    struct smtp_conn *sc = conn_state(conn);
    enum smtp_file_op op = sc->file_op;
    ASSERT(op != SMTP_FILE_NONE);
    sc->file_op = SMTP_FILE_NONE;
    if (op == SMTP_FILE_OPENING && result >= 0) {
        sc->spool_fd = result;
    }
    if (sc->is_abort_pending) {
        /* The transaction went away while the kernel worked: finish the
         * discard that smtp_conn_txn_abort started. */
        sc->is_abort_pending = false;
        smtp_conn_discard_spool(sc);
        body_buffer_give(conn, &sc->body_buffer);
        return;
    }
    if (op == SMTP_FILE_OPENING) {
        if (result < 0) {
            log_error("%s: cannot create spool file: %s", sc->queue_id, strerror(-result));
            body_buffer_give(conn, &sc->body_buffer);
            smtp_session_spool_opened(&sc->session, result, NULL, 0, NULL, 0);
        } else {
            sc->spool_offset = 0;
            smtp_session_spool_opened(&sc->session, 0, sc->body_buffer, SPOOL_CHUNK_BYTES,
                                      sc->queue_id, time(NULL));
        }
        smtp_conn_serve_request(sc);
        return;
    }
    if (op == SMTP_FILE_SYNCING) {
        if (result < 0) {
            log_error("%s: fdatasync of the spool file: %s", sc->queue_id, strerror(-result));
            /* The session's txn_abort (after this reply) discards the spool. */
            if (sc->is_lmtp) {
                lmtp_answer_all(sc, "451 4.3.0 Error: cannot store the message, try again later");
            } else {
                refusal_count(sc->conn, "451", STATS_REASON_INTERNAL);
                smtp_conn_count_final_reply(sc, false);
                smtp_session_delivered(
                    &sc->session, "451 4.3.0 Error: cannot store the message, try again later");
            }
        } else {
            smtp_conn_deliver(sc);
        }
        smtp_conn_serve_request(sc);
        return;
    }
    ASSERT(op == SMTP_FILE_WRITING);
    struct span body = smtp_session_body(&sc->session);
    if (result <= 0) {
        int error = result < 0 ? result : -EIO;
        log_error("%s: writing spool file: %s", sc->queue_id, strerror(-error));
        smtp_session_spool_written(&sc->session, error);
        smtp_conn_serve_request(sc);
        return;
    }
    sc->write_done += (size_t)result;
    ASSERT(sc->write_done <= body.len);
    if (sc->write_done < body.len) {
        /* Short write (a signal, or a full disk on the way): write the rest. */
        sc->file_op = SMTP_FILE_WRITING;
        conn_file_write(conn, sc->spool_fd, body.ptr + sc->write_done,
                        body.len - sc->write_done, sc->spool_offset + sc->write_done);
        return;
    }
    sc->spool_offset += body.len;
    smtp_session_spool_written(&sc->session, 0);
    smtp_conn_serve_request(sc);
}

static void
smtp_conn_close(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    ASSERT(sc->file_op == SMTP_FILE_NONE);
    buffer_wait_cancel(sc);
    if (sc->is_greet_wait) {
        log_info("postscreen: HANGUP after %.2f from [%s] in tests before SMTP handshake",
                 smtp_conn_greet_wait_seconds(sc), conn_peer_text(conn));
    }
    smtp_session_finish(&sc->session);
    smtp_conn_txn_abort(sc); /* also when the session was past DATA */
    log_info("disconnect from [%s]", conn_peer_text(conn));
}

/* ---- AUTH: the password check runs on a worker -------------------------------- */

struct smtp_auth {
    struct job        job;
    struct smtp_conn *sc;
    char              user[SMTP_AUTH_USER_BYTES];
    char              password[SMTP_AUTH_PASSWORD_BYTES];
    char              hash[512];
    bool              has_user;
    bool              is_ok;
};

static void
auth_job_run(struct job *job)
{
    struct smtp_auth *auth = (struct smtp_auth *)job;
    int rc = auth->has_user ? password_verify(auth->hash, auth->password) : -EACCES;
    if (rc == -ENOTSUP || rc == -EINVAL) {
        log_warning("smtp-login: users_file entry of <%s> has a hash we cannot check (%s)",
                    auth->user, strerror(-rc));
    }
    auth->is_ok = rc == 0;
    explicit_bzero(auth->password, sizeof(auth->password));
    explicit_bzero(auth->hash, sizeof(auth->hash));
    reactor_job_complete(job);
}

static void
auth_job_done(struct job *job, struct conn *conn)
{
    struct smtp_auth *auth = (struct smtp_auth *)job;
    struct smtp_conn *sc = auth->sc;
    sc->is_auth_out = false;
    if (conn != NULL) {
        if (auth->is_ok) {
            log_info("smtp-login: Login: user=<%s>, rip=%s", auth->user, conn_peer_text(conn));
            login_delay_succeeded(conn_peer_text(conn), auth->user);
            smtp_session_auth_done(&sc->session, true, auth->user);
            smtp_conn_serve_request(sc);
        } else {
            /* One stable line for fail2ban, and the 535 only after a delay
             * that grows with the address's and the user's failures. */
            struct timespec now;
            (void)clock_gettime(CLOCK_MONOTONIC, &now);
            uint32_t delay_ms =
                login_delay_failed(conn_peer_text(conn), auth->user, (uint64_t)now.tv_sec);
            log_info("smtp-login: auth failed: user=<%s>, rip=%s, delay=%ums", auth->user,
                     conn_peer_text(conn), delay_ms);
            sc->is_auth_fail_delayed = true;
            conn_timer_start(conn, delay_ms);
        }
    }
    explicit_bzero(auth, sizeof(*auth));
    free(auth);
}

static void
auth_submit(struct smtp_conn *sc)
{
    struct smtp_auth *auth = calloc(1, sizeof(*auth));
    if (auth == NULL) {
        smtp_session_auth_tempfail(&sc->session);
        return;
    }
    auth->sc = sc;
    (void)snprintf(auth->password, sizeof(auth->password), "%s",
                   smtp_session_auth_password(&sc->session));
    auth->has_user = recipients_login_lookup(recipients_current(),
                                             smtp_session_auth_user(&sc->session), auth->user,
                                             sizeof(auth->user), auth->hash, sizeof(auth->hash));
    auth->job.run = auth_job_run;
    auth->job.done = auth_job_done;
    if (conn_job_submit(sc->conn, &auth->job) != 0) {
        /* The worker queue is full: a temporary refusal, never a wrong
         * answer. */
        explicit_bzero(auth, sizeof(*auth));
        free(auth);
        smtp_session_auth_tempfail(&sc->session);
        return;
    }
    sc->is_auth_out = true;
}

/* The connection's one timer: the greet wait is over (port 25), or the
 * delay of a failed AUTH is; the two never overlap, as the wait ends
 * before any command is read. */
static void
smtp_conn_timer(struct conn *conn)
{
    struct smtp_conn *sc = conn_state(conn);
    if (sc->is_greet_wait) {
        smtp_conn_greet_wait_over(sc); /* the reactor sends the banner next */
        return;
    }
    if (sc->is_auth_fail_delayed) {
        sc->is_auth_fail_delayed = false;
        smtp_session_auth_done(&sc->session, false, NULL);
        smtp_conn_serve_request(sc);
    }
}

const struct conn_handler smtp_listener_handler = {
    .name = "smtp",
    .state_bytes = sizeof(struct smtp_conn),
    .refusal_text = smtp_listener.refusal_text,
    .open = smtp_conn_open,
    .input = smtp_conn_input,
    .wants_input = smtp_conn_wants_input,
    .read_timeout_ms = smtp_conn_read_timeout_ms,
    .pending_output = smtp_conn_pending_output,
    .output_sent = smtp_conn_output_sent,
    .is_closing = smtp_conn_is_closing,
    .timeout = smtp_conn_timeout,
    .shutdown = smtp_conn_shutdown,
    .file_done = smtp_conn_file_done,
    .close = smtp_conn_close,
    .timer = smtp_conn_timer,
};

/* ---- set-up ------------------------------------------------------------ */

/* postscreen and its key-value store, only when a postscreen key asks for
 * it: otherwise port 25 costs nothing more than before. The store lives
 * here until a second user (the filters) moves it to main. */
static int
smtp_listener_postscreen_init(const struct config *config)
{
    struct postscreen_config ps_config = {
        .greet_wait_ms = config->postscreen_greet_wait_ms,
        .bad_ttl_s = config->postscreen_bad_ttl_ms / 1000u,
        .good_ttl_s = config->postscreen_good_ttl_ms / 1000u,
        .rate_limit = config->postscreen_rate_limit,
    };
    if (ps_config.greet_wait_ms == 0 && ps_config.rate_limit == 0 &&
        config->postscreen_access[0] == '\0') {
        return 0;
    }
    char err[512];
    int rc = postscreen_create(&ps_config, config->postscreen_access, smtp_listener.kv,
                           &smtp_listener.postscreen, err, sizeof(err));
    if (rc != 0) {
        log_error("%s", err);
        return rc;
    }
    log_info("postscreen on smtp_listen: greet wait %ums, rate limit %u/min, %s key-value store",
             ps_config.greet_wait_ms, ps_config.rate_limit, kv_backend_name(smtp_listener.kv));
    return 0;
}

void
smtp_listener_set_filters(const struct filter_chain *filters)
{
    smtp_listener.filters = filters;
}

int
smtp_listener_init(const struct config *config, struct kv *kv)
{
    smtp_listener.config = config;
    smtp_listener.kv = kv;
    smtp_listener.is_spool_unnamed =
        config->spool_unnamed && spool_probe_unnamed(config->data_dir);
    char spool_dir[SPOOL_PATH_BYTES];
    if (spool_dir_path(config->data_dir, spool_dir, sizeof(spool_dir)) != 0) {
        return -ENAMETOOLONG;
    }
    smtp_listener.spool_dir_fd = open(spool_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (smtp_listener.spool_dir_fd < 0) {
        return -errno;
    }
    smtp_listener.session_config = (struct smtp_session_config){
        .hostname = config->myhostname,
        .message_size_limit = config->message_size_limit,
        .recipient_limit = config->recipient_limit,
        .error_limit = config->smtp_error_limit,
        .junk_command_limit = config->smtp_junk_command_limit,
        .reject_bare_lf = config->bare_lf == BARE_LF_REJECT,
        .hopcount_limit = config->hopcount_limit,
    };
    smtp_listener.submission_config = smtp_listener.session_config;
    smtp_listener.submission_config.is_submission = true;
    smtp_listener.lmtp_config = smtp_listener.session_config;
    smtp_listener.lmtp_config.is_lmtp = true;
    smtp_listener.submission_config.is_plaintext_auth_allowed = config->allow_plaintext_auth;
    /* Authenticated users (only submission offers AUTH) get their own,
     * usually smaller, recipient bound: 452 4.5.3 beyond it. */
    if (config->submission_recipients_per_message < config->recipient_limit) {
        smtp_listener.submission_config.recipient_limit =
            config->submission_recipients_per_message;
    }
    char networks_err[128];
    if (cidr_list_parse(config->mynetworks, &smtp_listener.mynetworks, networks_err,
                        sizeof(networks_err)) != 0) {
        log_error("mynetworks: %s", networks_err); /* config_finish checked it already */
        return -EINVAL;
    }
    if (config->relay_domains[0] != '\0') {
        char routes_err[256];
        int routes_rc = route_table_create(NULL, config->relay_domains, NULL, 0,
                                           &smtp_listener.relay_domains, routes_err,
                                           sizeof(routes_err));
        if (routes_rc != 0) {
            log_error("relay_domains: %s", routes_err);
            return routes_rc;
        }
    }
    int limit_rc = send_limit_create(config->submission_messages_per_hour,
                                     &smtp_listener.send_limit);
    if (limit_rc != 0) {
        return limit_rc;
    }
    smtp_listener.callbacks = (struct smtp_session_callbacks){
        .rcpt = smtp_conn_rcpt,
        .txn_abort = smtp_conn_txn_abort,
        .sender_allowed = smtp_conn_sender_allowed,
        .rcpt_reply = lmtp_rcpt_reply,
        .refused = smtp_conn_refused,
    };
    (void)snprintf(smtp_listener.refusal_text, sizeof(smtp_listener.refusal_text),
                   "421 4.7.0 %s Error: too many connections, try again later\r\n",
                   config->myhostname);
    int ps_rc = smtp_listener_postscreen_init(config);
    if (ps_rc != 0) {
        return ps_rc;
    }
    smtp_listener.pool_count = config->reactor_threads;
    smtp_listener.pools = calloc(smtp_listener.pool_count, sizeof(*smtp_listener.pools));
    if (smtp_listener.pools == NULL) {
        return -ENOMEM;
    }
    for (uint32_t r = 0; r < smtp_listener.pool_count; r++) {
        struct reactor_pools *pool = &smtp_listener.pools[r];
        size_t bytes = (size_t)config->spool_buffers * SPOOL_CHUNK_BYTES;
        /* One mapping per reactor; pages cost memory only once used. */
        void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                            -1, 0);
        pool->free_list = calloc(config->spool_buffers, sizeof(*pool->free_list));
        if (memory == MAP_FAILED || pool->free_list == NULL) {
            return -ENOMEM;
        }
        pool->memory = memory;
        pool->capacity = config->spool_buffers;
        for (uint32_t i = 0; i < pool->capacity; i++) {
            pool->free_list[pool->free_count++] = pool->memory + (size_t)i * SPOOL_CHUNK_BYTES;
        }
    }
    return 0;
}

void
smtp_listener_destroy(void)
{
    for (uint32_t r = 0; r < smtp_listener.pool_count; r++) {
        struct reactor_pools *pool = &smtp_listener.pools[r];
        if (pool->memory != NULL) {
            (void)munmap(pool->memory, (size_t)pool->capacity * SPOOL_CHUNK_BYTES);
        }
        delivery_message_pool_drain(&pool->messages);
        free(pool->free_list);
    }
    free(smtp_listener.pools);
    smtp_listener.pools = NULL;
    send_limit_destroy(&smtp_listener.send_limit);
    route_table_destroy(&smtp_listener.relay_domains);
    if (smtp_listener.postscreen != NULL) {
        postscreen_destroy(&smtp_listener.postscreen);
    }
    smtp_listener.kv = NULL; /* main's */
    if (smtp_listener.spool_dir_fd >= 0) {
        (void)close(smtp_listener.spool_dir_fd);
        smtp_listener.spool_dir_fd = -1;
    }
}

