/*
 * core/relay_session.c - one outbound SMTP session of the delivery agent:
 * a reactor connection (reactor_connect) whose handler drives the client
 * state machine (proto/smtp/smtp_client) and carries one group of
 * recipients after another to one destination.
 *
 * The session decides, at each READY: STARTTLS first when the TLS level
 * for the destination asks for it (may: when offered; encrypt and verify:
 * required, else the group is deferred and nothing is sent in clear), then
 * AUTH PLAIN when smtp_sasl_password_file has the next hop (over TLS
 * only), then the next message. The message body comes from the attempt's
 * read-only map of the queue file: with CHUNKING as one BDAT LAST straight
 * from the map (no copy), else dot-stuffed a buffer at a time for DATA.
 *
 * A connect that fails or times out, or a server that refuses the session
 * (greeting or EHLO), sends the group on to the next hop (within
 * smtp_mx_session_limit); trouble once a message has started defers its
 * recipients that have no answer yet. An idle session waits
 * smtp_connection_cache_time_limit for another group of its destination,
 * then says QUIT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/config.h"
#include "core/log.h"
#include "core/reactor.h"
#include "core/relay.h"
#include "core/relay_internal.h"
#include "core/tls.h"
#include "proto/smtp/smtp_dotstuff.h"

#define RELAY_STUFF_BYTES 16384u          /* dot-stuffed body per send */
#define RELAY_BDAT_SEND_BYTES_MAX (1u << 20) /* one send of a BDAT chunk from the map */

enum relay_body {
    RELAY_BODY_NONE,
    RELAY_BODY_BDAT,
    RELAY_BODY_DATA,
};

enum relay_out {
    RELAY_OUT_NONE,
    RELAY_OUT_CLIENT, /* smtp_client's command bytes */
    RELAY_OUT_MAP,    /* BDAT chunk bytes straight from the map */
    RELAY_OUT_STUFF,  /* dot-stuffed DATA bytes */
};

struct relay_session {
    struct conn          *conn;
    struct relay_dest    *dest;
    struct relay_group   *group;     /* the recipients being carried, or NULL */
    struct relay_session *idle_next; /* on dest->idle */
    struct smtp_client    client;
    struct smtp_client_message message;
    char                  hop_host[ROUTE_NAME_BYTES_MAX + 1];
    char                  hop_text[ROUTE_NAME_BYTES_MAX + 64]; /* "mx.example[192.0.2.1]:25" */
    enum relay_tls_level  tls_level; /* the hop's: never RELAY_TLS_DANE */
    struct relay_tls_hop  tls_hop;   /* DANE_ONLY: its TLSA records */
    const struct relay_credential *credential;
    bool                  is_connected;
    bool                  is_idle;
    bool                  is_closing;
    bool                  is_quitting;
    bool                  is_tls_tried;
    bool                  is_tls_pending; /* the handshake runs */
    bool                  is_authed;
    bool                  is_message_started;
    bool                  is_body_sent;   /* the end of the data went out */
    bool                  is_timer_armed; /* the idle timer (one per connection) */
    bool                  is_quit_sent_then_close; /* stopping: QUIT goes out, then close */
    int64_t               idle_since_ms;
    uint32_t              message_count;
    /* The body in flight. */
    enum relay_body       body;
    enum relay_out        last_out;
    const uint8_t        *prefix;         /* our DKIM-Signature fields, or NULL */
    size_t                prefix_len;
    const uint8_t        *body_bytes;     /* the message in the map */
    size_t                body_bytes_len;
    size_t                body_len;       /* prefix_len + body_bytes_len */
    size_t                body_done;      /* consumed of the two together */
    struct smtp_dotstuff  stuff;
    bool                  is_stuff_finished;
    size_t                stuff_len;
    size_t                stuff_sent;
    char                  failure[QUEUE_REPLY_BYTES]; /* why the session ends, for the log */
    uint8_t               stuff_buffer[RELAY_STUFF_BYTES];
};

static const struct conn_handler relay_handler;

static int64_t
monotonic_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reply and log texts: cut to fit, which is what we want for them. */
static void __attribute__((format(printf, 3, 4)))
text_format(char *out, size_t out_bytes, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(out, out_bytes, fmt, ap);
    va_end(ap);
}

/* "550 5.1.1 text" from a reply. */
static void
reply_format(const struct smtp_client_reply *reply, char *out, size_t out_bytes)
{
    text_format(out, out_bytes, "%u %.*s", (unsigned)reply->code, (int)reply->text.len,
                   (const char *)reply->text.ptr);
}

static void
session_quit(struct relay_session *session)
{
    if (session->is_quitting || session->is_closing) {
        return;
    }
    session->is_quitting = true;
    enum smtp_client_state state = smtp_client_state(&session->client);
    if (state == SMTP_CLIENT_STATE_CLOSED || state == SMTP_CLIENT_STATE_FAILED) {
        session->is_closing = true;
        return;
    }
    smtp_client_quit(&session->client);
}

static void
idle_remove(struct relay_session *session)
{
    if (!session->is_idle) {
        return;
    }
    session->is_idle = false;
    struct relay_session **link = &session->dest->idle;
    while (*link != NULL && *link != session) {
        link = &(*link)->idle_next;
    }
    if (*link == session) {
        *link = session->idle_next;
    }
    session->idle_next = NULL;
}

/* Every recipient of the group without a result gets reply; the group is
 * then done. */
static void
group_finish(struct relay_session *session, enum queue_outcome_kind kind, const char *reply)
{
    struct relay_group *group = session->group;
    if (group == NULL) {
        return;
    }
    session->group = NULL;
    for (size_t k = 0; k < group->rcpt_count; k++) {
        relay_result_set(group, group->rcpts[k], kind, reply, session->hop_text);
    }
    relay_group_done(group);
}

/* The session cannot carry the group (refused before a message): the next
 * hop may. */
static void
group_next_hop(struct relay_session *session, const char *reason)
{
    struct relay_group *group = session->group;
    if (group == NULL) {
        return;
    }
    session->group = NULL;
    text_format(group->last_error, sizeof(group->last_error), "%s", reason);
    relay_group_retry(group);
}

static void start_message(struct relay_session *session);

/* READY: the next verb. */
static void
session_ready(struct relay_session *session)
{
    struct conn *conn = session->conn;
    const struct smtp_client_caps *caps = smtp_client_caps(&session->client);
    if (session->is_quitting) {
        return;
    }
    bool is_tls = conn_tls_session(conn) != NULL;
    if (!is_tls && session->tls_level != RELAY_TLS_NONE && !session->is_tls_tried) {
        if (caps->has_starttls) {
            session->is_tls_tried = true;
            int rc = smtp_client_starttls(&session->client);
            ASSERT(rc == 0);
            return;
        }
        if (session->tls_level >= RELAY_TLS_ENCRYPT) {
            char reason[QUEUE_REPLY_BYTES];
            text_format(reason, sizeof(reason),
                           "451 4.7.4 TLS is required, but was not offered by host %s",
                           session->hop_text);
            group_next_hop(session, reason);
            session_quit(session);
            return;
        }
    }
    if (session->credential != NULL && !session->is_authed) {
        int rc = -EPERM;
        if (is_tls) {
            struct span user = { .ptr = session->credential->user,
                                 .len = strlen(session->credential->user) };
            struct span password = { .ptr = session->credential->password,
                                     .len = strlen(session->credential->password) };
            rc = smtp_client_auth_plain(&session->client, user, password);
            if (rc == 0) {
                return;
            }
        }
        char reason[QUEUE_REPLY_BYTES];
        text_format(reason, sizeof(reason),
                       "451 4.7.0 SASL authentication with %s is not possible: %s",
                       session->hop_text,
                       rc == -EPERM ? "no TLS" : rc == -ENOTSUP ? "no AUTH PLAIN offered"
                                                               : "bad credentials");
        group_next_hop(session, reason);
        session_quit(session);
        return;
    }
    if (session->group != NULL && !relay_dest_rate_take(session->dest)) {
        /* Opened for this group, but the rate delay says not yet: it
         * waits in line, and this session idles until it may take it. */
        relay_group_requeue(session->group);
        session->group = NULL;
    }
    for (uint32_t turn = 0; turn < 64 && !session->is_quitting; turn++) {
        if (session->group == NULL) {
            session->group = relay_dest_take(session->dest, session);
        }
        if (session->group == NULL) {
            break;
        }
        start_message(session);
        if (session->is_message_started) {
            return;
        }
    }
    /* Nothing to carry: wait for the next group, or go. */
    uint32_t keep_ms = relay_agent.config->smtp_connection_cache_time_limit_ms;
    if (keep_ms == 0 || reactor_is_draining(conn_reactor(conn))) {
        session_quit(session);
        return;
    }
    if (!session->is_idle) {
        session->is_idle = true;
        session->idle_since_ms = monotonic_ms();
        session->idle_next = session->dest->idle;
        session->dest->idle = session;
        if (!session->is_timer_armed) {
            /* An earlier one still running looks at idle_since when it fires. */
            session->is_timer_armed = true;
            conn_timer_start(conn, keep_ms);
        }
        relay_dest_kick(session->dest); /* work may be waiting for a session */
    }
}

static enum smtp_client_ret
ret_of(enum queue_ret ret)
{
    return ret == QUEUE_RET_FULL   ? SMTP_CLIENT_RET_FULL
           : ret == QUEUE_RET_HDRS ? SMTP_CLIENT_RET_HDRS
                                   : SMTP_CLIENT_RET_NONE;
}

static void
start_message(struct relay_session *session)
{
    struct relay_group *group = session->group;
    struct relay_attempt *attempt = group->attempt;
    session->message = (struct smtp_client_message){
        .mail_from = { .ptr = attempt->entry.mail_from, .len = strlen(attempt->entry.mail_from) },
        .rcpts = group->client_rcpts,
        .rcpt_count = group->rcpt_count,
        .size_bytes = attempt->dkim_fields_len + attempt->map_len - attempt->body_offset,
        .needs_8bitmime = attempt->is_8bit,
        .needs_smtputf8 = attempt->is_utf8,
        .use_chunking = true,
        .ret = ret_of(attempt->entry.ret),
        .envid = { .ptr = attempt->envid_xtext, .len = strlen(attempt->envid_xtext) },
    };
    int rc = smtp_client_start_message(&session->client, &session->message);
    if (rc != 0) {
        const char *local = smtp_client_local_reply(rc);
        group_finish(session, QUEUE_OUTCOME_FAILED,
                     local != NULL ? local : "501 5.1.3 bad address syntax in the envelope");
        return;
    }
    session->is_message_started = true;
    session->is_body_sent = false;
    session->body = RELAY_BODY_NONE;
    session->prefix = (const uint8_t *)attempt->dkim_fields;
    session->prefix_len = attempt->dkim_fields_len;
    session->body_bytes = attempt->map + attempt->body_offset;
    session->body_bytes_len = attempt->map_len - attempt->body_offset;
    session->body_len = session->prefix_len + session->body_bytes_len;
    session->body_done = 0;
}

/* The message's bytes from body_done on that are contiguous: the rest of
 * the DKIM fields, else the rest of the map. */
static const uint8_t *
body_piece(const struct relay_session *session, size_t *len_out)
{
    ASSERT(session->body_done <= session->body_len);
    if (session->body_done < session->prefix_len) {
        *len_out = session->prefix_len - session->body_done;
        return session->prefix + session->body_done;
    }
    size_t offset = session->body_done - session->prefix_len;
    *len_out = session->body_bytes_len - offset;
    return session->body_bytes + offset;
}

/* The body's turn (SEND_BODY): BDAT from the map, or DATA dot-stuffed. */
static void
body_begin(struct relay_session *session)
{
    const struct smtp_client_caps *caps = smtp_client_caps(&session->client);
    session->body_done = 0;
    if (caps->has_chunking && session->message.use_chunking) {
        session->body = RELAY_BODY_BDAT;
        smtp_client_bdat(&session->client, session->body_len, true);
        if (session->body_len == 0) {
            session->body = RELAY_BODY_NONE;
            session->is_body_sent = true;
        }
        return;
    }
    session->body = RELAY_BODY_DATA;
    smtp_dotstuff_init(&session->stuff);
    session->is_stuff_finished = false;
    session->stuff_len = 0;
    session->stuff_sent = 0;
}

static void
message_done(struct relay_session *session, const struct smtp_client_event *event)
{
    struct relay_group *group = session->group;
    session->is_message_started = false;
    session->body = RELAY_BODY_NONE;
    if (group == NULL) {
        return;
    }
    char reply[QUEUE_REPLY_BYTES];
    reply_format(&event->reply, reply, sizeof(reply));
    const struct smtp_client_caps *caps = smtp_client_caps(&session->client);
    struct relay_result *results = group->attempt->results;
    size_t too_many = 0;
    for (size_t k = 0; k < group->rcpt_count; k++) {
        too_many += results[group->rcpts[k]].is_too_many ? 1 : 0;
    }
    /* Recipients refused with 452 go again in a transaction of their own
     * when this one carried at least one recipient; else they wait. */
    bool is_split = too_many > 0 && too_many < group->rcpt_count &&
                    event->result == SMTP_CLIENT_RESULT_OK && event->is_reusable;
    for (size_t k = 0; k < group->rcpt_count; k++) {
        struct relay_result *result = &results[group->rcpts[k]];
        if (result->is_too_many && !is_split) {
            result->is_too_many = false;
            relay_result_set(group, group->rcpts[k], QUEUE_OUTCOME_DEFERRED,
                             "452 4.5.3 too many recipients", session->hop_text);
        }
    }
    session->group = NULL;
    for (size_t k = 0; k < group->rcpt_count; k++) {
        if (results[group->rcpts[k]].is_too_many) {
            continue;
        }
        enum queue_outcome_kind kind = QUEUE_OUTCOME_DEFERRED;
        if (event->result == SMTP_CLIENT_RESULT_OK) {
            /* A next hop with DSN took NOTIFY over (RFC 3461 5.2.2); one
             * without it gets a "relayed" report of ours when SUCCESS was
             * asked for. */
            bool wants_success = (group->client_rcpts[k].notify & SMTP_CLIENT_NOTIFY_SUCCESS) != 0;
            kind = caps->has_dsn     ? QUEUE_OUTCOME_PASSED_ON
                   : wants_success   ? QUEUE_OUTCOME_RELAYED
                                     : QUEUE_OUTCOME_DELIVERED;
        } else if (event->result == SMTP_CLIENT_RESULT_FAIL) {
            kind = QUEUE_OUTCOME_FAILED;
        }
        relay_result_set(group, group->rcpts[k], kind, reply, session->hop_text);
    }
    session->message_count++;
    if (is_split) {
        /* The group keeps only the ones refused for number, in order, and
         * is this session's next message (at READY). */
        size_t kept = 0;
        for (size_t k = 0; k < group->rcpt_count; k++) {
            struct relay_result *result = &results[group->rcpts[k]];
            if (result->is_too_many) {
                result->is_too_many = false;
                group->rcpts[kept] = group->rcpts[k];
                group->client_rcpts[kept] = group->client_rcpts[k];
                kept++;
            }
        }
        ASSERT(kept == too_many);
        group->rcpt_count = kept;
        session->group = group;
        return;
    }
    relay_group_done(group);
}

static void
tls_go(struct relay_session *session)
{
    struct tls_conn *tls = NULL;
    enum tls_verify verify = TLS_VERIFY_NONE;
    struct tls_tlsa tlsa[TLS_TLSA_MAX];
    size_t tlsa_count = 0;
    if (session->tls_level == RELAY_TLS_DANE_ONLY) {
        verify = TLS_VERIFY_DANE; /* RFC 7672: the TLSA records, not the name's chain */
        tlsa_count = relay_tls_hop_tlsa(&session->tls_hop, tlsa);
    } else if (session->tls_level == RELAY_TLS_VERIFY) {
        verify = TLS_VERIFY_NAME;
    }
    int rc = tls_conn_new_client(relay_agent.tls, session->hop_host, verify,
                                 tlsa_count > 0 ? tlsa : NULL, tlsa_count, &tls);
    if (rc == 0) {
        rc = conn_tls_start_client(session->conn, tls);
    }
    if (rc != 0) {
        text_format(session->failure, sizeof(session->failure),
                       "451 4.7.5 cannot start TLS with %s: %s", session->hop_text,
                       strerror(-rc));
        session->is_closing = true;
        return;
    }
    session->is_tls_pending = true;
}

static void
handle_event(struct relay_session *session, const struct smtp_client_event *event)
{
    char reply[QUEUE_REPLY_BYTES];
    switch (event->kind) {
    case SMTP_CLIENT_EV_READY:
        session_ready(session);
        break;
    case SMTP_CLIENT_EV_TLS_GO:
        tls_go(session);
        break;
    case SMTP_CLIENT_EV_TLS_REFUSED:
        if (session->tls_level >= RELAY_TLS_ENCRYPT) {
            char text[QUEUE_REPLY_BYTES];
            reply_format(&event->reply, text, sizeof(text));
            text_format(reply, sizeof(reply),
                           "451 4.7.4 TLS is required, but host %s refused to start TLS: %.200s",
                           session->hop_text, text);
            group_next_hop(session, reply);
            session_quit(session);
        }
        break; /* may: READY follows, in clear */
    case SMTP_CLIENT_EV_AUTH_DONE:
        if (event->result == SMTP_CLIENT_RESULT_OK) {
            session->is_authed = true;
            break;
        }
        {
            char text[QUEUE_REPLY_BYTES];
            reply_format(&event->reply, text, sizeof(text));
            text_format(reply, sizeof(reply),
                           "451 4.7.0 SASL authentication failed; server %s said: %.200s",
                           session->hop_text, text);
        }
        group_next_hop(session, reply);
        session_quit(session);
        break;
    case SMTP_CLIENT_EV_RCPT:
        if (event->reply.code == 452 && session->group != NULL) {
            /* Too many recipients for one transaction (RFC 5321 4.5.3.1.10):
             * the rest go in the next one, at once, as Postfix does. */
            ASSERT(event->rcpt_index < session->group->rcpt_count);
            struct relay_attempt *attempt = session->group->attempt;
            attempt->results[session->group->rcpts[event->rcpt_index]].is_too_many = true;
            break;
        }
        if (event->result != SMTP_CLIENT_RESULT_OK && session->group != NULL) {
            ASSERT(event->rcpt_index < session->group->rcpt_count);
            reply_format(&event->reply, reply, sizeof(reply));
            relay_result_set(session->group, session->group->rcpts[event->rcpt_index],
                             event->result == SMTP_CLIENT_RESULT_FAIL ? QUEUE_OUTCOME_FAILED
                                                                      : QUEUE_OUTCOME_DEFERRED,
                             reply, session->hop_text);
        }
        break;
    case SMTP_CLIENT_EV_SEND_BODY:
        body_begin(session);
        break;
    case SMTP_CLIENT_EV_MESSAGE_DONE:
        message_done(session, event);
        break;
    case SMTP_CLIENT_EV_SESSION_FAILED:
        reply_format(&event->reply, reply, sizeof(reply));
        if (session->group != NULL && !event->had_message && !session->is_message_started) {
            char reason[QUEUE_REPLY_BYTES];
            text_format(reason, sizeof(reason), "%.200s (host %s refused to talk to me)", reply,
                           session->hop_text);
            group_next_hop(session, reason);
        } else {
            group_finish(session, QUEUE_OUTCOME_DEFERRED, reply);
        }
        session->is_quitting = true;
        break;
    case SMTP_CLIENT_EV_CLOSED:
        session->is_closing = true;
        break;
    case SMTP_CLIENT_EV_PROTOCOL_ERROR:
        text_format(reply, sizeof(reply), "451 4.4.2 protocol error from host %s%s",
                       session->hop_text,
                       event->was_body_sent ? " after the end of data (a duplicate may follow)"
                                            : "");
        if (session->group != NULL && !session->is_message_started) {
            group_next_hop(session, reply);
        } else {
            group_finish(session, QUEUE_OUTCOME_DEFERRED, reply);
        }
        text_format(session->failure, sizeof(session->failure), "%s", reply);
        session->is_closing = true;
        break;
    }
}

/* ---- the handler ----------------------------------------------------------------- */

static void
session_open(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    session->is_connected = true;
    if (session->group != NULL) {
        session->group->sessions_tried++;
    }
    struct smtp_client_params params = {
        .helo_name = { .ptr = relay_agent.helo_name, .len = strlen(relay_agent.helo_name) },
    };
    if (smtp_client_init(&session->client, &params) != 0) {
        text_format(session->failure, sizeof(session->failure),
                       "451 4.3.5 smtp_helo_name is not a valid name");
        session->is_closing = true;
    }
    log_debug("relay: connected to %s", session->hop_text);
}

static size_t
session_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct relay_session *session = conn_state(conn);
    size_t used_total = 0;
    for (uint32_t turn = 0; !session->is_closing; turn++) {
        ASSERT(turn <= len + 64);
        if (session->is_tls_pending) {
            break; /* the rest is TLS's */
        }
        size_t used = 0;
        struct smtp_client_event event;
        enum smtp_client_status status = smtp_client_feed(
            &session->client, bytes + used_total, len - used_total, &used, &event);
        used_total += used;
        if (status == SMTP_CLIENT_NEED_MORE) {
            break;
        }
        handle_event(session, &event);
    }
    return session->is_closing ? len : used_total;
}

static bool
session_wants_input(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    return !session->is_closing;
}

static uint32_t
session_read_timeout_ms(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    const struct config *config = relay_agent.config;
    switch (smtp_client_state(&session->client)) {
    case SMTP_CLIENT_STATE_GREETING:
        return config->smtp_greeting_timeout_ms;
    case SMTP_CLIENT_STATE_DATA_END:
    case SMTP_CLIENT_STATE_BDAT:
        return config->smtp_data_done_timeout_ms;
    default:
        break;
    }
    uint32_t ms = smtp_client_timeout_ms(&session->client);
    return ms;
}

/* The handshake is done once TLS hands us plaintext room: EHLO again. */
static void
tls_check_established(struct relay_session *session)
{
    const struct tls_conn *tls = conn_tls_session(session->conn);
    if (!session->is_tls_pending || tls == NULL) {
        return;
    }
    session->is_tls_pending = false;
    if (session->tls_level >= RELAY_TLS_VERIFY && !tls_conn_is_verified(tls)) {
        char reason[QUEUE_REPLY_BYTES];
        const char *why = tls_conn_verify_error(tls);
        text_format(reason, sizeof(reason),
                       "451 4.7.5 server certificate not verified for %s: %s",
                       session->hop_text, why != NULL ? why : "unknown");
        group_next_hop(session, reason);
        session->is_closing = true;
        return;
    }
    log_debug("relay: TLS with %s: %s %s%s", session->hop_text, tls_conn_version(tls),
              tls_conn_cipher(tls), tls_conn_is_verified(tls) ? " (verified)" : "");
    smtp_client_tls_started(&session->client);
}

static struct span
session_pending_output(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    tls_check_established(session);
    session->last_out = RELAY_OUT_NONE;
    if (session->is_closing && !session->is_quit_sent_then_close) {
        return (struct span){ 0 };
    }
    struct span out = smtp_client_output(&session->client);
    if (session->is_quit_sent_then_close) {
        session->last_out = out.len > 0 ? RELAY_OUT_CLIENT : RELAY_OUT_NONE;
        return out; /* the QUIT, nothing else */
    }
    if (out.len > 0) {
        session->last_out = RELAY_OUT_CLIENT;
        return out;
    }
    if (session->body == RELAY_BODY_BDAT && session->body_done < session->body_len) {
        size_t len = 0;
        const uint8_t *piece = body_piece(session, &len);
        if (len > RELAY_BDAT_SEND_BYTES_MAX) {
            len = RELAY_BDAT_SEND_BYTES_MAX;
        }
        session->last_out = RELAY_OUT_MAP;
        return (struct span){ .ptr = (const char *)piece, .len = len };
    }
    if (session->body == RELAY_BODY_DATA) {
        if (session->stuff_sent == session->stuff_len && !session->is_stuff_finished) {
            /* Refill: the next piece dot-stuffed, then the terminator. */
            size_t in_used = 0;
            size_t out_len = 0;
            /* At most two pieces (the DKIM fields, then the map) per refill. */
            for (uint32_t piece_count = 0;
                 piece_count < 2 && session->body_done < session->body_len &&
                 out_len + SMTP_DOTSTUFF_STEP_BYTES_MAX <= sizeof(session->stuff_buffer);
                 piece_count++) {
                size_t piece_len = 0;
                const uint8_t *piece = body_piece(session, &piece_len);
                size_t piece_out = 0;
                smtp_dotstuff_encode(&session->stuff, piece, piece_len, &in_used,
                                     session->stuff_buffer + out_len,
                                     sizeof(session->stuff_buffer) - out_len, &piece_out);
                session->body_done += in_used;
                out_len += piece_out;
            }
            if (session->body_done == session->body_len &&
                sizeof(session->stuff_buffer) - out_len >= SMTP_DOTSTUFF_FINISH_BYTES_MAX) {
                out_len += smtp_dotstuff_finish(&session->stuff, session->stuff_buffer + out_len,
                                                sizeof(session->stuff_buffer) - out_len);
                session->is_stuff_finished = true;
            }
            session->stuff_len = out_len;
            session->stuff_sent = 0;
        }
        if (session->stuff_sent < session->stuff_len) {
            session->last_out = RELAY_OUT_STUFF;
            return (struct span){ .ptr = (const char *)session->stuff_buffer + session->stuff_sent,
                                  .len = session->stuff_len - session->stuff_sent };
        }
    }
    return (struct span){ 0 };
}

static void
session_output_sent(struct conn *conn, size_t bytes)
{
    struct relay_session *session = conn_state(conn);
    switch (session->last_out) {
    case RELAY_OUT_CLIENT:
        smtp_client_output_consumed(&session->client, bytes);
        break;
    case RELAY_OUT_MAP:
        session->body_done += bytes;
        ASSERT(session->body_done <= session->body_len);
        if (session->body_done == session->body_len) {
            session->body = RELAY_BODY_NONE; /* BDAT LAST's reply is awaited */
            session->is_body_sent = true;
        }
        break;
    case RELAY_OUT_STUFF:
        session->stuff_sent += bytes;
        ASSERT(session->stuff_sent <= session->stuff_len);
        if (session->stuff_sent == session->stuff_len && session->is_stuff_finished) {
            session->body = RELAY_BODY_NONE;
            session->is_body_sent = true;
            smtp_client_body_sent(&session->client);
        }
        break;
    case RELAY_OUT_NONE:
        ASSERT(bytes == 0);
        break;
    }
    session->last_out = RELAY_OUT_NONE;
}

static bool
session_is_closing(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    return session->is_closing;
}

static const char *
state_words(enum smtp_client_state state)
{
    switch (state) {
    case SMTP_CLIENT_STATE_GREETING:
        return "receiving the initial server greeting";
    case SMTP_CLIENT_STATE_EHLO:
    case SMTP_CLIENT_STATE_HELO:
        return "performing the EHLO handshake";
    case SMTP_CLIENT_STATE_STARTTLS:
    case SMTP_CLIENT_STATE_TLS_HANDSHAKE:
        return "performing the TLS handshake";
    case SMTP_CLIENT_STATE_AUTH:
        return "authenticating";
    case SMTP_CLIENT_STATE_MAIL:
        return "sending MAIL FROM / RCPT TO";
    case SMTP_CLIENT_STATE_BODY:
    case SMTP_CLIENT_STATE_BDAT:
        return "sending message body";
    case SMTP_CLIENT_STATE_DATA_END:
        return "sending end of data -- message may be sent more than once";
    default:
        return "talking";
    }
}

/* What the session was doing, for a timeout or a lost connection: once
 * the whole message is out, the reply to its end is what was awaited. */
static const char *
session_doing(const struct relay_session *session)
{
    if (session->is_message_started && session->is_body_sent) {
        return state_words(SMTP_CLIENT_STATE_DATA_END);
    }
    return state_words(smtp_client_state(&session->client));
}

static void
session_timeout(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    char reply[QUEUE_REPLY_BYTES];
    text_format(reply, sizeof(reply), "451 4.4.2 conversation with %s timed out while %s",
                   session->hop_text, session_doing(session));
    if (session->group != NULL && !session->is_message_started) {
        group_next_hop(session, reply);
    } else {
        group_finish(session, QUEUE_OUTCOME_DEFERRED, reply);
    }
    text_format(session->failure, sizeof(session->failure), "%s", reply);
    session->is_closing = true;
}

static void
session_timer(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    session->is_timer_armed = false;
    if (!session->is_idle) {
        return;
    }
    uint32_t keep_ms = relay_agent.config->smtp_connection_cache_time_limit_ms;
    int64_t idle_ms = monotonic_ms() - session->idle_since_ms;
    if (idle_ms + 10 < (int64_t)keep_ms) {
        session->is_timer_armed = true;
        conn_timer_start(conn, (uint32_t)((int64_t)keep_ms - idle_ms));
        return;
    }
    idle_remove(session);
    session_quit(session);
}

/* Stopping: say QUIT and close once it is out, without waiting for the
 * reply (a silent server would hold the stop for its whole timeout). */
static void
session_quit_now(struct relay_session *session)
{
    session_quit(session);
    session->is_quit_sent_then_close = true;
    session->is_closing = true;
}

static void
session_shutdown(struct conn *conn, bool is_forced)
{
    struct relay_session *session = conn_state(conn);
    if (session->is_idle) {
        idle_remove(session);
        session_quit_now(session);
        return;
    }
    if (!session->is_message_started && session->group != NULL) {
        /* Nothing sent yet (connecting, greeting, EHLO): no reason to
         * wait; its recipients stay pending, untried. */
        struct relay_group *group = session->group;
        session->group = NULL;
        relay_group_requeue(group);
        session_quit_now(session);
        return;
    }
    if (is_forced) {
        group_finish(session, QUEUE_OUTCOME_DEFERRED, "451 4.3.2 the mail system is stopping");
        session->is_closing = true;
    }
}

static void
session_file_done(struct conn *conn, int result)
{
    (void)conn;
    (void)result;
    ASSERT(false); /* no file operations here */
}

static void
session_close(struct conn *conn)
{
    struct relay_session *session = conn_state(conn);
    struct relay_dest *dest = session->dest;
    struct relay *relay = &relay_agent;
    ASSERT(dest != NULL && dest->sessions > 0 && relay->sessions > 0);
    idle_remove(session);
    if (!session->is_connected) {
        int error = conn_connect_error(conn);
        char reason[QUEUE_REPLY_BYTES];
        text_format(reason, sizeof(reason), "451 4.4.1 connect to %s: %s", session->hop_text,
                       error == -ETIMEDOUT ? "Connection timed out" : strerror(-error));
        log_info("relay: %s", reason + 10);
        group_next_hop(session, reason);
    } else if (session->group != NULL) {
        char reason[QUEUE_REPLY_BYTES];
        if (session->failure[0] != '\0') {
            text_format(reason, sizeof(reason), "%s", session->failure);
        } else {
            text_format(reason, sizeof(reason), "451 4.4.2 lost connection with %s while %s",
                           session->hop_text, session_doing(session));
        }
        if (session->is_message_started) {
            group_finish(session, QUEUE_OUTCOME_DEFERRED, reason);
        } else {
            group_next_hop(session, reason);
        }
    }
    if (session->failure[0] != '\0') {
        log_info("relay: session with %s ended: %s", session->hop_text, session->failure);
    }
    dest->sessions--;
    relay->sessions--;
    relay_dest_kick(dest);
    memset(session, 0, sizeof(*session));
}

static const struct conn_handler relay_handler = {
    .name = "smtp-client",
    .state_bytes = sizeof(struct relay_session),
    .refusal_text = NULL,
    .open = session_open,
    .input = session_input,
    .wants_input = session_wants_input,
    .read_timeout_ms = session_read_timeout_ms,
    .pending_output = session_pending_output,
    .output_sent = session_output_sent,
    .is_closing = session_is_closing,
    .timeout = session_timeout,
    .shutdown = session_shutdown,
    .file_done = session_file_done,
    .close = session_close,
    .timer = session_timer,
};

const struct conn_handler *
relay_session_handler(void)
{
    return &relay_handler;
}

/* ---- for the scheduler ------------------------------------------------------------- */

int
relay_session_open(struct relay_dest *dest, struct relay_group *group)
{
    struct relay *relay = &relay_agent;
    while (group->hop_next < group->route.hop_count) {
        size_t hop_index = group->hop_next++;
        const struct route_hop *hop = &group->route.hops[hop_index];
        ASSERT(group->tls_hops != NULL); /* ROUTE made them for every OK route */
        const struct relay_tls_hop *tls_hop = &group->tls_hops[hop_index];
        if (tls_hop->is_skipped) {
            /* DANE or MTA-STS says never to this host. */
            log_info("relay: %s: not trying %s: %s", group->domain, hop->host, tls_hop->reason);
            text_format(group->last_error, sizeof(group->last_error), "451 4.7.5 %s",
                        tls_hop->reason);
            continue;
        }
        struct sockaddr_storage address;
        socklen_t address_len;
        char text[INET6_ADDRSTRLEN] = "?";
        memset(&address, 0, sizeof(address));
        if (hop->address.family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&address;
            in->sin_family = AF_INET;
            in->sin_port = htons(hop->port);
            in->sin_addr = hop->address.v4;
            address_len = sizeof(*in);
            (void)inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(hop->port);
            in6->sin6_addr = hop->address.v6;
            address_len = sizeof(*in6);
            (void)inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        }
        struct conn *conn = NULL;
        int rc = reactor_connect(relay->reactor, &relay_handler, (struct sockaddr *)&address,
                                 address_len, relay->config->smtp_connect_timeout_ms, &conn);
        if (rc == -EAGAIN) {
            group->hop_next--;
            return -EAGAIN;
        }
        if (rc != 0) {
            text_format(group->last_error, sizeof(group->last_error),
                           "451 4.4.1 connect to %s[%s]:%u: %s", hop->host, text,
                           (unsigned)hop->port, strerror(-rc));
            continue;
        }
        struct relay_session *session = conn_state(conn);
        memset(session, 0, sizeof(*session));
        session->conn = conn;
        session->dest = dest;
        session->group = group;
        text_format(session->hop_host, sizeof(session->hop_host), "%s", hop->host);
        text_format(session->hop_text, sizeof(session->hop_text), "%s[%s]:%u", hop->host,
                       text, (unsigned)hop->port);
        session->tls_hop = *tls_hop;
        session->tls_level = tls_hop->level;
        ASSERT(session->tls_level != RELAY_TLS_DANE);
        if (tls_hop->reason[0] != '\0') {
            log_debug("relay: %s: TLS %s for %s: %s", group->domain,
                      relay_tls_level_name(tls_hop->level), session->hop_text, tls_hop->reason);
        }
        session->credential = relay_credential_for(group->key);
        dest->sessions++;
        relay->sessions++;
        return 0;
    }
    return -EHOSTUNREACH;
}

bool
relay_session_suits(const struct relay_session *session, const struct relay_group *group)
{
    /* The group's own decision for this host (DANE, MTA-STS, the domain's
     * level) must not ask for more than this session was opened with. */
    for (size_t i = 0; i < group->route.hop_count && group->tls_hops != NULL; i++) {
        if (strcmp(group->route.hops[i].host, session->hop_host) == 0) {
            const struct relay_tls_hop *hop = &group->tls_hops[i];
            return !hop->is_skipped && hop->level <= session->tls_level;
        }
    }
    return false;
}

void
relay_session_give(struct relay_session *session, struct relay_group *group)
{
    ASSERT(session->group == NULL);
    session->is_idle = false;
    session->idle_next = NULL;
    session->group = group;
    start_message(session);
    if (!session->is_message_started) {
        session_ready(session); /* refused before a command: the next group, or idle */
    }
    conn_kick(session->conn);
}

void
relay_session_quit(struct relay_session *session)
{
    idle_remove(session);
    session_quit(session);
    conn_kick(session->conn);
}

struct relay_session *
relay_session_next_idle(struct relay_session *session)
{
    struct relay_session *next = session->idle_next;
    session->idle_next = NULL;
    session->is_idle = false;
    return next;
}
