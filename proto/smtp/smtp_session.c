/*
 * proto/smtp/smtp_session.c - the SMTP server state machine.
 *
 * Owns the conversation: command line assembly (bounded), what each verb
 * means in each state, the replies with their enhanced status codes, the
 * transaction (sender, recipient count, DSN parameters) and body streaming
 * through the DATA and BDAT decoders into a buffer the owner writes to the
 * spool. In LMTP mode (RFC 2033) the same machine greets with LHLO and
 * gives one reply per recipient at the end of the data (lmtp_pump).
 * Does not own sockets, files or the recipient tables: those are the
 * owner's, reached through requests and callbacks. Runs on the reactor
 * thread that owns the connection; nothing here blocks or allocates.
 * Limits: SMTP_LINE_BYTES_MAX, recipient_limit, message_size_limit,
 * error_limit, junk_command_limit (core/limits.h, core/config.h).
 */
#include "proto/smtp/smtp_session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/assertions.h"
#include "core/sasl.h"

static_assert(SMTP_SEND_HIGH_BYTES + 1024 <= SMTP_SEND_BUFFER_BYTES, "room for one reply");
static_assert(SMTP_STATE_COUNT <= 32, "states fit in a bit mask");

#define STATE_BIT(s) (1u << (s))
#define READING_STATES                                                               \
    (STATE_BIT(SMTP_STATE_CONNECTED) | STATE_BIT(SMTP_STATE_READY) |                 \
     STATE_BIT(SMTP_STATE_RCPT) | STATE_BIT(SMTP_STATE_BDAT_NEXT))

/* Bytes a session may take from one feed call before it returns, so one
 * pipelining client cannot hold the reactor for long. */
#define SMTP_FEED_STEPS_MAX 100000

struct smtp_verb_rule {
    uint32_t states_allowed;
    bool     is_junk; /* counts against junk_command_limit, as Postfix counts them */
    void   (*run)(struct smtp_session *, const struct smtp_cmd *);
};

static void session_enter(struct smtp_session *session, enum smtp_state next);
static void reply(struct smtp_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void reply_error(struct smtp_session *session, enum smtp_refusal why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_owner_error(struct smtp_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void refuse(struct smtp_session *session, enum smtp_refusal why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void txn_reset(struct smtp_session *session);
static void txn_end(struct smtp_session *session);
static void dispatch_line(struct smtp_session *session);
static size_t feed_command(struct smtp_session *session, const uint8_t *in, size_t len);
static size_t feed_data(struct smtp_session *session, const uint8_t *in, size_t len);
static size_t feed_bdat(struct smtp_session *session, const uint8_t *in, size_t len);
static void body_finished(struct smtp_session *session);
static void bdat_chunk_begin(struct smtp_session *session);
static void bdat_chunk_finished(struct smtp_session *session);
static void request(struct smtp_session *session, enum smtp_request what);
static void run_helo(struct smtp_session *, const struct smtp_cmd *);
static void run_ehlo(struct smtp_session *, const struct smtp_cmd *);
static void run_mail(struct smtp_session *, const struct smtp_cmd *);
static void run_rcpt(struct smtp_session *, const struct smtp_cmd *);
static void run_data(struct smtp_session *, const struct smtp_cmd *);
static void run_bdat(struct smtp_session *, const struct smtp_cmd *);
static void run_rset(struct smtp_session *, const struct smtp_cmd *);
static void run_noop(struct smtp_session *, const struct smtp_cmd *);
static void run_quit(struct smtp_session *, const struct smtp_cmd *);
static void run_vrfy(struct smtp_session *, const struct smtp_cmd *);
static void run_expn(struct smtp_session *, const struct smtp_cmd *);
static void run_help(struct smtp_session *, const struct smtp_cmd *);
static void run_not_offered(struct smtp_session *, const struct smtp_cmd *);
static void run_starttls(struct smtp_session *, const struct smtp_cmd *);
static void run_auth(struct smtp_session *, const struct smtp_cmd *);
static bool is_auth_offered(const struct smtp_session *session);
static void sasl_line(struct smtp_session *session);
static void lmtp_pump(struct smtp_session *session);

static const struct smtp_verb_rule verb_rules[SMTP_VERB_COUNT] = {
    [SMTP_VERB_HELO] = { READING_STATES, false, run_helo },
    [SMTP_VERB_EHLO] = { READING_STATES, false, run_ehlo },
    [SMTP_VERB_MAIL] = { STATE_BIT(SMTP_STATE_READY), false, run_mail },
    [SMTP_VERB_RCPT] = { STATE_BIT(SMTP_STATE_RCPT), false, run_rcpt },
    [SMTP_VERB_DATA] = { STATE_BIT(SMTP_STATE_RCPT), false, run_data },
    /* BDAT is accepted in every reading state: its bytes must be consumed
     * even when the command is refused, so run_bdat checks the state. */
    [SMTP_VERB_BDAT] = { READING_STATES, false, run_bdat },
    [SMTP_VERB_RSET] = { READING_STATES, true, run_rset },
    [SMTP_VERB_NOOP] = { READING_STATES, true, run_noop },
    [SMTP_VERB_QUIT] = { READING_STATES, false, run_quit },
    [SMTP_VERB_VRFY] = { READING_STATES, true, run_vrfy },
    [SMTP_VERB_EXPN] = { READING_STATES, true, run_expn },
    [SMTP_VERB_HELP] = { READING_STATES, true, run_help },
    [SMTP_VERB_STARTTLS] = { READING_STATES, false, run_starttls },
    [SMTP_VERB_AUTH] = { READING_STATES, false, run_auth },
};

/* ---- public ------------------------------------------------------------ */

void
smtp_session_init(struct smtp_session *session, const struct smtp_session_config *config,
                  const struct smtp_session_callbacks *callbacks, void *owner,
                  const char *client_address)
{
    ASSERT(config != NULL);
    ASSERT(callbacks != NULL);
    ASSERT(callbacks->rcpt != NULL);
    ASSERT(callbacks->txn_abort != NULL);
    if (config->is_lmtp) {
        ASSERT(callbacks->rcpt_reply != NULL);
        ASSERT(!config->is_submission);
    }
    memset(session, 0, offsetof(struct smtp_session, out));
    session->out_len = 0;
    session->config = config;
    session->callbacks = callbacks;
    session->owner = owner;
    session->state = SMTP_STATE_CONNECTED;
    (void)snprintf(session->client_address, sizeof(session->client_address), "%s",
                   client_address);
    reply(session, "220 %s %s toaster", config->hostname, config->is_lmtp ? "LMTP" : "ESMTP");
}

void
smtp_session_set_transport(struct smtp_session *session, bool is_tls_offered, bool is_tls,
                           bool is_loopback)
{
    session->is_tls_offered = is_tls_offered;
    session->is_tls = is_tls;
    session->is_loopback = is_loopback;
}

const char *
smtp_session_auth_user(const struct smtp_session *session)
{
    ASSERT(session->request == SMTP_REQUEST_AUTH);
    return session->auth_user;
}

const char *
smtp_session_auth_password(const struct smtp_session *session)
{
    ASSERT(session->request == SMTP_REQUEST_AUTH);
    return session->auth_password;
}

void
smtp_session_auth_done(struct smtp_session *session, bool is_ok, const char *canonical_user)
{
    ASSERT(session->request == SMTP_REQUEST_AUTH && session->is_request_taken);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    explicit_bzero(session->auth_password, sizeof(session->auth_password));
    if (is_ok) {
        ASSERT(canonical_user != NULL);
        (void)snprintf(session->user, sizeof(session->user), "%s", canonical_user);
        reply(session, "235 2.7.0 Authentication successful");
    } else {
        reply_error(session, SMTP_REFUSAL_AUTH_FAILED, "535 5.7.8 Error: authentication failed");
    }
    explicit_bzero(session->auth_user, sizeof(session->auth_user));
}

void
smtp_session_auth_tempfail(struct smtp_session *session)
{
    ASSERT(session->request == SMTP_REQUEST_AUTH && session->is_request_taken);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    explicit_bzero(session->auth_password, sizeof(session->auth_password));
    explicit_bzero(session->auth_user, sizeof(session->auth_user));
    refuse(session, SMTP_REFUSAL_LOCAL_ERROR, "454 4.7.0 Temporary authentication failure");
}

const char *
smtp_session_user(const struct smtp_session *session)
{
    return session->user;
}

void
smtp_session_tls_started(struct smtp_session *session)
{
    ASSERT(session->request == SMTP_REQUEST_STARTTLS && session->is_request_taken);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    session->is_tls = true;
    /* Forget everything learnt before TLS: it may have been forged. */
    session->helo[0] = '\0';
    session->is_esmtp = false;
    session->state = SMTP_STATE_CONNECTED;
}

void
smtp_session_tls_describe(struct smtp_session *session, const char *version, const char *cipher,
                          int bits)
{
    (void)snprintf(session->tls_text, sizeof(session->tls_text), "%s with cipher %s (%d/%d bits)",
                   version, cipher, bits, bits);
}

size_t
smtp_session_feed(struct smtp_session *session, const uint8_t *in, size_t len)
{
    size_t used = 0;
    for (unsigned steps = 0; used < len && smtp_session_wants_input(session); steps++) {
        if (steps == SMTP_FEED_STEPS_MAX) {
            break; /* the owner feeds the rest on its next turn */
        }
        size_t n;
        switch (session->state) {
        case SMTP_STATE_DATA:
            n = feed_data(session, in + used, len - used);
            break;
        case SMTP_STATE_BDAT:
            n = feed_bdat(session, in + used, len - used);
            break;
        default:
            n = feed_command(session, in + used, len - used);
            break;
        }
        ASSERT(n <= len - used);
        used += n;
    }
    return used;
}

bool
smtp_session_wants_input(const struct smtp_session *session)
{
    if (session->request != SMTP_REQUEST_NONE) {
        return false;
    }
    if (session->out_len > SMTP_SEND_HIGH_BYTES) {
        return false;
    }
    switch (session->state) {
    case SMTP_STATE_CONNECTED:
    case SMTP_STATE_READY:
    case SMTP_STATE_RCPT:
    case SMTP_STATE_BDAT_NEXT:
    case SMTP_STATE_DATA:
    case SMTP_STATE_BDAT:
        return true;
    case SMTP_STATE_SPOOL_OPEN:
    case SMTP_STATE_DELIVER:
    case SMTP_STATE_CLOSING:
    case SMTP_STATE_COUNT:
        return false;
    }
    return false;
}

bool
smtp_session_is_receiving_body(const struct smtp_session *session)
{
    return session->state == SMTP_STATE_DATA || session->state == SMTP_STATE_BDAT;
}

bool
smtp_session_is_closing(const struct smtp_session *session)
{
    return session->state == SMTP_STATE_CLOSING;
}

enum smtp_request
smtp_session_take_request(struct smtp_session *session)
{
    if (session->request == SMTP_REQUEST_NONE || session->is_request_taken) {
        return SMTP_REQUEST_NONE;
    }
    session->is_request_taken = true;
    return session->request;
}

struct span
smtp_session_output(const struct smtp_session *session)
{
    return span_make(session->out, session->out_len);
}

void
smtp_session_output_sent(struct smtp_session *session, size_t bytes)
{
    ASSERT(bytes <= session->out_len);
    memmove(session->out, session->out + bytes, session->out_len - bytes);
    session->out_len -= bytes;
    if (session->lmtp_reply_count > 0) {
        lmtp_pump(session); /* LMTP replies waiting for room */
    }
}

void
smtp_session_spool_opened(struct smtp_session *session, int result, uint8_t *body,
                          size_t body_capacity, const char *queue_id, time_t now)
{
    ASSERT(session->state == SMTP_STATE_SPOOL_OPEN);
    ASSERT(session->request == SMTP_REQUEST_SPOOL_OPEN);
    ASSERT(session->is_request_taken);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;

    if (result != 0) {
        if (session->txn.is_bdat) {
            /* The chunk's bytes follow the command: consume them, then 451. */
            session->txn_reject = 451;
            session_enter(session, SMTP_STATE_BDAT);
            bdat_chunk_begin(session);
            return;
        }
        refuse(session, SMTP_REFUSAL_LOCAL_ERROR,
               "451 4.3.0 Error: cannot create queue file, try again later");
        session_enter(session, SMTP_STATE_RCPT);
        return;
    }
    ASSERT(body != NULL);
    ASSERT(body_capacity >= 2 * SMTP_LINE_BYTES_MAX);
    session->body = body;
    session->body_capacity = body_capacity;
    session->body_len = 0;

    /* Trace headers go first (RFC 5321 section 4.4): Return-Path for the
     * mailbox, then our Received line. The recipient is named only when
     * there is one, so a message never lists its other recipients. */
    struct tm tm;
    (void)gmtime_r(&now, &tm);
    char date[64];
    size_t date_len = strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000 (UTC)", &tm);
    ASSERT(date_len > 0);
    /* RFC 3848 and RFC 6531 protocol names: S for TLS, A for AUTH. */
    char protocol[16];
    const char *protocol_base = session->txn.is_smtputf8 ? "UTF8SMTP"
                                : session->is_esmtp      ? "ESMTP"
                                                         : "SMTP";
    if (session->config->is_lmtp) {
        protocol_base = session->txn.is_smtputf8 ? "UTF8LMTP" : "LMTP"; /* RFC 3848, 6531 */
    }
    (void)snprintf(protocol, sizeof(protocol), "%s%s%s", protocol_base,
                   session->is_tls && (session->is_esmtp || session->txn.is_smtputf8) ? "S" : "",
                   session->user[0] != '\0' ? "A" : "");
    /* As Postfix writes it: which TLS carried the message. */
    char tls_clause[sizeof(session->tls_text) + 16] = "";
    if (session->is_tls && session->tls_text[0] != '\0') {
        (void)snprintf(tls_clause, sizeof(tls_clause), "\r\n\t(using %s)", session->tls_text);
    }
    char for_clause[SMTP_ADDRESS_BYTES_MAX + 16] = "";
    if (session->txn.rcpt_count == 1) {
        (void)snprintf(for_clause, sizeof(for_clause), "\r\n\tfor <%s>", session->txn.first_rcpt);
    }
    /* A Unix socket peer has no address to show (RFC 5321 4.4: the
     * TCP-info is optional). */
    char peer_clause[sizeof(session->client_address) + 8] = "";
    if (strcmp(session->client_address, "unix") != 0) {
        (void)snprintf(peer_clause, sizeof(peer_clause), " ([%s])", session->client_address);
    }
    int n = snprintf((char *)body, body_capacity,
                     "Return-Path: <%s>\r\n"
                     "Received: from %s%s%s\r\n"
                     "\tby %s (toaster) with %s id %s%s;\r\n"
                     "\t%s\r\n",
                     session->txn.mail_from, session->helo, peer_clause, tls_clause,
                     session->config->hostname, protocol, queue_id, for_clause, date);
    ASSERT(n > 0 && (size_t)n < body_capacity - 2);
    session->body_len = (size_t)n;
    session->txn.body_bytes = 0;

    if (session->txn.is_bdat) {
        session_enter(session, SMTP_STATE_BDAT);
        bdat_chunk_begin(session);
        return;
    }
    smtp_data_decoder_init(&session->data_decoder);
    smtp_hop_counter_init(&session->hops);
    reply(session, "354 End data with <CR><LF>.<CR><LF>");
    session_enter(session, SMTP_STATE_DATA);
}

struct span
smtp_session_body(const struct smtp_session *session)
{
    return span_make((const char *)session->body, session->body_len);
}

void
smtp_session_spool_written(struct smtp_session *session, int result)
{
    ASSERT(session->request == SMTP_REQUEST_SPOOL_WRITE);
    ASSERT(session->is_request_taken);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    if (result == 0) {
        session->txn.body_bytes += session->body_len;
    } else if (session->spool_error == 0) {
        session->spool_error = result;
    }
    session->body_len = 0;
    if (session->is_body_done) {
        body_finished(session);
    }
}

void
smtp_session_delivered(struct smtp_session *session, const char *reply_line)
{
    ASSERT(session->state == SMTP_STATE_DELIVER);
    ASSERT(session->request == SMTP_REQUEST_DELIVER);
    ASSERT(session->is_request_taken);
    ASSERT(reply_line != NULL);
    ASSERT(!session->config->is_lmtp);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    reply(session, "%s", reply_line);
    /* The owner took the message; what remains of the transaction is ours. */
    session->body = NULL;
    session->body_capacity = 0;
    txn_end(session);
}

void
smtp_session_delivered_each(struct smtp_session *session)
{
    ASSERT(session->config->is_lmtp);
    ASSERT(session->state == SMTP_STATE_DELIVER);
    ASSERT(session->request == SMTP_REQUEST_DELIVER);
    ASSERT(session->is_request_taken);
    ASSERT(session->txn.rcpt_count > 0);
    session->request = SMTP_REQUEST_NONE;
    session->is_request_taken = false;
    /* The owner took the message; what remains of the transaction is ours. */
    session->body = NULL;
    session->body_capacity = 0;
    session->lmtp_refusal = NULL;
    session->lmtp_refusal_reason = SMTP_REFUSAL_PROTOCOL;
    session->is_lmtp_refusal_peer_error = false;
    session->lmtp_reply_index = 0;
    session->lmtp_reply_count = session->txn.rcpt_count;
    lmtp_pump(session);
}

void
smtp_session_timeout(struct smtp_session *session)
{
    if (session->state == SMTP_STATE_CLOSING) {
        return;
    }
    reply(session, "421 4.4.2 %s Error: timeout exceeded", session->config->hostname);
    smtp_session_finish(session);
    session_enter(session, SMTP_STATE_CLOSING);
}

void
smtp_session_shutdown(struct smtp_session *session)
{
    session->is_shutting_down = true;
    if (session->state == SMTP_STATE_CONNECTED || session->state == SMTP_STATE_READY) {
        if (session->request == SMTP_REQUEST_NONE) {
            reply(session, "421 4.3.2 %s Service shutting down, closing transmission channel",
                  session->config->hostname);
            session_enter(session, SMTP_STATE_CLOSING);
        }
    }
}

void
smtp_session_finish(struct smtp_session *session)
{
    /* A message the owner already took (DELIVER in flight) is the owner's to
     * finish; anything earlier is dropped. */
    if (session->state != SMTP_STATE_DELIVER || session->lmtp_refusal != NULL) {
        session->callbacks->txn_abort(session->owner);
    }
    session->lmtp_reply_count = 0;
    session->body = NULL;
    session->body_capacity = 0;
    session->body_len = 0;
}

const char *
smtp_state_name(enum smtp_state state)
{
    static const char *const names[SMTP_STATE_COUNT] = {
        [SMTP_STATE_CONNECTED] = "CONNECTED", [SMTP_STATE_READY] = "READY",
        [SMTP_STATE_RCPT] = "RCPT",           [SMTP_STATE_SPOOL_OPEN] = "SPOOL_OPEN",
        [SMTP_STATE_DATA] = "DATA",           [SMTP_STATE_BDAT] = "BDAT",
        [SMTP_STATE_BDAT_NEXT] = "BDAT_NEXT", [SMTP_STATE_DELIVER] = "DELIVER",
        [SMTP_STATE_CLOSING] = "CLOSING",
    };
    return state < SMTP_STATE_COUNT ? names[state] : "?";
}

/* ---- state and replies -------------------------------------------------- */

static bool
transition_allowed(enum smtp_state from, enum smtp_state to)
{
    if (to == SMTP_STATE_CLOSING) {
        return true;
    }
    switch (from) {
    case SMTP_STATE_CONNECTED:
        return to == SMTP_STATE_READY || to == SMTP_STATE_BDAT;
    case SMTP_STATE_READY:
        return to == SMTP_STATE_READY || to == SMTP_STATE_RCPT || to == SMTP_STATE_BDAT;
    case SMTP_STATE_RCPT:
        return to == SMTP_STATE_READY || to == SMTP_STATE_SPOOL_OPEN || to == SMTP_STATE_BDAT;
    case SMTP_STATE_SPOOL_OPEN:
        return to == SMTP_STATE_DATA || to == SMTP_STATE_BDAT || to == SMTP_STATE_RCPT;
    case SMTP_STATE_DATA:
        return to == SMTP_STATE_DELIVER || to == SMTP_STATE_READY;
    case SMTP_STATE_BDAT:
        return to == SMTP_STATE_BDAT_NEXT || to == SMTP_STATE_DELIVER ||
               to == SMTP_STATE_READY || to == SMTP_STATE_CONNECTED || to == SMTP_STATE_RCPT;
    case SMTP_STATE_BDAT_NEXT:
        return to == SMTP_STATE_BDAT || to == SMTP_STATE_READY;
    case SMTP_STATE_DELIVER:
        return to == SMTP_STATE_READY;
    case SMTP_STATE_CLOSING:
    case SMTP_STATE_COUNT:
        return false;
    }
    return false;
}

static void
session_enter(struct smtp_session *session, enum smtp_state next)
{
    ASSERT(transition_allowed(session->state, next));
    session->state = next;
}

static void __attribute__((format(printf, 2, 0)))
reply_va(struct smtp_session *session, const char *fmt, va_list ap)
{
    size_t room = sizeof(session->out) - session->out_len;
    /* The session stops reading above SMTP_SEND_HIGH_BYTES, so one reply
     * always fits; anything else is a bug here. */
    ASSERT(room > SMTP_REPLY_LINE_BYTES_MAX);
    int n = vsnprintf(session->out + session->out_len, room - 2, fmt, ap);
    ASSERT(n > 0);
    size_t len = (size_t)n < room - 2 ? (size_t)n : room - 3;
    session->out_len += len;
    session->out[session->out_len++] = '\r';
    session->out[session->out_len++] = '\n';
}

static void
reply(struct smtp_session *session, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_va(session, fmt, ap);
    va_end(ap);
}

/* Tell the owner (callbacks.refused) of the refusal whose line starts
 * at line_start in the output. */
static void
refusal_report(struct smtp_session *session, enum smtp_refusal why, size_t line_start)
{
    ASSERT((unsigned)why < SMTP_REFUSAL_COUNT);
    ASSERT(session->out_len >= line_start + 2);
    ASSERT(session->out[line_start] == '4' || session->out[line_start] == '5');
    if (session->callbacks->refused != NULL) {
        session->callbacks->refused(session->owner, why,
                                    span_make(session->out + line_start,
                                              session->out_len - line_start - 2));
    }
}

/* A refusal of ours that is not the peer's mistake (a bound it may meet,
 * our own trouble): reported, not counted against the error budget. */
static void __attribute__((format(printf, 3, 0)))
refuse_va(struct smtp_session *session, enum smtp_refusal why, const char *fmt, va_list ap)
{
    size_t line_start = session->out_len;
    reply_va(session, fmt, ap);
    refusal_report(session, why, line_start);
}

static void
refuse(struct smtp_session *session, enum smtp_refusal why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    refuse_va(session, why, fmt, ap);
    va_end(ap);
}

/* Past the error budget the session ends with 421 (Postfix's
 * hard_error_limit). */
static void
error_budget_spend(struct smtp_session *session)
{
    session->error_count++;
    if (session->error_count >= session->config->error_limit &&
        session->state != SMTP_STATE_CLOSING) {
        reply(session, "421 4.7.0 %s Error: too many errors", session->config->hostname);
        smtp_session_finish(session);
        session_enter(session, SMTP_STATE_CLOSING);
    }
}

/* A reply caused by the peer's mistake: reported with why, and counts
 * against the error budget. */
static void
reply_error(struct smtp_session *session, enum smtp_refusal why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    refuse_va(session, why, fmt, ap);
    va_end(ap);
    error_budget_spend(session);
}

/* The owner's refusal of a recipient (its rcpt verdict): the peer's
 * mistake too, but the owner counts its own decisions, so not reported. */
static void
reply_owner_error(struct smtp_session *session, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_va(session, fmt, ap);
    va_end(ap);
    error_budget_spend(session);
}

static void
request(struct smtp_session *session, enum smtp_request what)
{
    ASSERT(session->request == SMTP_REQUEST_NONE);
    ASSERT(what != SMTP_REQUEST_NONE);
    session->request = what;
    session->is_request_taken = false;
}

static void
txn_reset(struct smtp_session *session)
{
    session->callbacks->txn_abort(session->owner);
    memset(&session->txn, 0, sizeof(session->txn));
    session->body = NULL;
    session->body_capacity = 0;
    session->body_len = 0;
    session->bdat_remaining = 0;
    session->is_bdat_last = false;
    session->bdat_total = 0;
    session->is_body_done = false;
    session->is_oversize = false;
    session->spool_error = 0;
    session->txn_reject = 0;
    session->lmtp_reply_index = 0;
    session->lmtp_reply_count = 0;
    session->lmtp_refusal = NULL;
    session->lmtp_refusal_reason = SMTP_REFUSAL_PROTOCOL;
    session->is_lmtp_refusal_peer_error = false;
}

/* The transaction is over (delivered or refused): back to READY, or out if
 * the daemon is stopping. */
static void
txn_end(struct smtp_session *session)
{
    txn_reset(session);
    session_enter(session, SMTP_STATE_READY);
    if (session->is_shutting_down) {
        reply(session, "421 4.3.2 %s Service shutting down, closing transmission channel",
              session->config->hostname);
        session_enter(session, SMTP_STATE_CLOSING);
    }
}

/* ---- command lines ------------------------------------------------------- */

static size_t
feed_command(struct smtp_session *session, const uint8_t *in, size_t len)
{
    const uint8_t *lf = memchr(in, '\n', len);
    size_t segment = lf != NULL ? (size_t)(lf - in) : len;
    size_t room = SMTP_LINE_BYTES_MAX - session->line_len;
    if (!session->is_line_overflow) {
        /* The CR of a CRLF may be the byte past the limit: keep one extra. */
        if (segment <= room + 1) {
            memcpy(session->line + session->line_len, in, segment);
            session->line_len += segment;
        } else {
            session->is_line_overflow = true;
        }
    }
    if (segment > 0) {
        session->is_cr_pending = in[segment - 1] == '\r';
    }
    if (lf == NULL) {
        if (session->line_len > SMTP_LINE_BYTES_MAX &&
            !(session->line_len == SMTP_LINE_BYTES_MAX + 1 && session->is_cr_pending)) {
            session->is_line_overflow = true;
        }
        return len;
    }
    bool is_crlf = session->is_cr_pending;
    if (is_crlf && !session->is_line_overflow) {
        ASSERT(session->line_len > 0);
        session->line_len--; /* drop the CR */
    }
    if (session->line_len > SMTP_LINE_BYTES_MAX) {
        session->is_line_overflow = true;
    }
    session->is_cr_pending = false;
    size_t used = segment + 1;

    if (session->is_line_overflow) {
        session->is_line_overflow = false;
        session->line_len = 0;
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "500 5.5.6 Error: line too long");
        return used;
    }
    if (!is_crlf && session->config->reject_bare_lf) {
        session->line_len = 0;
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: bare <LF> received");
        return used;
    }
    session->line[session->line_len] = '\0';
    if (session->sasl != SMTP_SASL_NONE) {
        sasl_line(session); /* a SASL response, not a command */
    } else {
        dispatch_line(session);
    }
    explicit_bzero(session->line, session->line_len);
    session->line_len = 0;
    return used;
}

static void
reply_parse_error(struct smtp_session *session, const struct smtp_cmd *cmd,
                  enum smtp_parse_error error)
{
    bool is_rcpt = cmd->verb == SMTP_VERB_RCPT;
    switch (error) {
    case SMTP_PARSE_OK:
        ASSERT(false);
        break;
    case SMTP_PARSE_UNKNOWN_VERB:
    case SMTP_PARSE_NUL_BYTE:
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: command not recognized");
        break;
    case SMTP_PARSE_BAD_PATH:
    case SMTP_PARSE_PATH_TOO_LONG:
        if (is_rcpt) {
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.1.3 Bad recipient address syntax");
        } else {
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.1.7 Bad sender address syntax");
        }
        break;
    case SMTP_PARSE_SYNTAX:
    case SMTP_PARSE_TOO_MANY_PARAMS:
        switch (cmd->verb) {
        case SMTP_VERB_HELO:
        case SMTP_VERB_EHLO:
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Syntax: %s hostname",
                        session->config->is_lmtp ? "LHLO" : smtp_verb_name(cmd->verb));
            break;
        case SMTP_VERB_MAIL:
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Syntax: MAIL FROM:<address>");
            break;
        case SMTP_VERB_RCPT:
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Syntax: RCPT TO:<address>");
            break;
        case SMTP_VERB_BDAT:
            /* Without a size we cannot know where the chunk ends, so the
             * byte stream cannot be followed any more: end the session. */
            refuse(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Syntax: BDAT count [LAST]");
            reply(session, "421 4.7.0 %s Error: cannot continue after BDAT syntax error",
                  session->config->hostname);
            smtp_session_finish(session);
            session_enter(session, SMTP_STATE_CLOSING);
            break;
        default:
            reply_error(session, SMTP_REFUSAL_PROTOCOL,
                        "501 5.5.4 Syntax error in parameters or arguments");
            break;
        }
        break;
    }
}

/* Whether the line's verb is word (4 letters, any case), followed by a
 * space or nothing. */
static bool
line_verb_is(const struct smtp_session *session, const char *word)
{
    ASSERT(strlen(word) == 4);
    if (session->line_len < 4 || (session->line_len > 4 && session->line[4] != ' ')) {
        return false;
    }
    return span_equals_nocase(span_make(session->line, 4), word);
}

/* LMTP's greeting verbs, before the SMTP parser sees the line: LHLO is
 * read as EHLO (the parser knows no LHLO), HELO and EHLO are refused
 * (RFC 2033 4.1). Returns false when the line was answered here. */
static bool
lmtp_line_prepare(struct smtp_session *session)
{
    if (line_verb_is(session, "LHLO")) {
        memcpy(session->line, "EHLO", 4);
        return true;
    }
    if (line_verb_is(session, "HELO") || line_verb_is(session, "EHLO")) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "500 5.5.1 Error: this is LMTP, send LHLO");
        return false;
    }
    return true;
}

static void
dispatch_line(struct smtp_session *session)
{
    if (session->config->is_lmtp && !lmtp_line_prepare(session)) {
        return;
    }
    struct smtp_cmd cmd;
    enum smtp_parse_error error = smtp_parser_parse(session->line, session->line_len, &cmd);
    if (error != SMTP_PARSE_OK) {
        reply_parse_error(session, &cmd, error);
        return;
    }
    ASSERT(cmd.verb > SMTP_VERB_UNKNOWN && cmd.verb < SMTP_VERB_COUNT);
    const struct smtp_verb_rule *rule = &verb_rules[cmd.verb];
    ASSERT(rule->run != NULL);
    if (session->is_shutting_down &&
        (session->state == SMTP_STATE_CONNECTED || session->state == SMTP_STATE_READY) &&
        cmd.verb != SMTP_VERB_QUIT) {
        reply(session, "421 4.3.2 %s Service shutting down, closing transmission channel",
              session->config->hostname);
        session_enter(session, SMTP_STATE_CLOSING);
        return;
    }
    if (rule->is_junk) {
        session->junk_count++;
        if (session->junk_count > session->config->junk_command_limit) {
            refuse(session, SMTP_REFUSAL_PROTOCOL, "421 4.7.0 %s Error: too many junk commands",
                   session->config->hostname);
            smtp_session_finish(session);
            session_enter(session, SMTP_STATE_CLOSING);
            return;
        }
    }
    if ((rule->states_allowed & STATE_BIT(session->state)) == 0) {
        switch (cmd.verb) {
        case SMTP_VERB_MAIL:
            if (session->state == SMTP_STATE_CONNECTED) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL,
                            session->config->is_lmtp ? "503 5.5.1 Error: send LHLO first"
                                                     : "503 5.5.1 Error: send HELO/EHLO first");
            } else {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: nested MAIL command");
            }
            break;
        case SMTP_VERB_RCPT:
            if (session->state == SMTP_STATE_BDAT_NEXT) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: RCPT after BDAT");
            } else {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: need MAIL command");
            }
            break;
        case SMTP_VERB_DATA:
            if (session->state == SMTP_STATE_BDAT_NEXT) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: DATA after BDAT");
            } else {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: need RCPT command");
            }
            break;
        default:
            reply_error(session, SMTP_REFUSAL_PROTOCOL,
                        "503 5.5.1 Error: bad sequence of commands");
            break;
        }
        return;
    }
    rule->run(session, &cmd);
}

/* ---- verbs --------------------------------------------------------------- */

static void
remember_helo(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    /* Kept for the Received header: printable ASCII only, so a client
     * cannot put line breaks or control bytes into a header. */
    size_t n = 0;
    for (size_t i = 0; i < cmd->argument.len && n + 1 < sizeof(session->helo); i++) {
        unsigned char c = (unsigned char)cmd->argument.ptr[i];
        if (c == ' ' || c == '\t') {
            break;
        }
        session->helo[n++] = (c > 0x20 && c < 0x7f && c != '(' && c != ')') ? (char)c : '?';
    }
    session->helo[n] = '\0';
}

static void
greet(struct smtp_session *session, const struct smtp_cmd *cmd, bool is_esmtp)
{
    /* HELO/EHLO in the middle of a transaction resets it (RFC 5321 4.1.4). */
    if (session->state == SMTP_STATE_RCPT || session->state == SMTP_STATE_BDAT_NEXT) {
        txn_reset(session);
    }
    remember_helo(session, cmd);
    session->is_esmtp = is_esmtp;
    session_enter(session, SMTP_STATE_READY); /* from any reading state: a fresh start */
}

static void
run_helo(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    greet(session, cmd, false);
    reply(session, "250 %s", session->config->hostname);
}

static void
run_ehlo(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    greet(session, cmd, true);
    reply(session, "250-%s", session->config->hostname);
    if (session->config->is_lmtp) {
        /* No STARTTLS and no AUTH: LMTP serves a trusted front end on
         * loopback or a Unix socket. No DSN: every recipient is local, so
         * the front end reports success itself ("delivered"). */
        reply(session, "250-PIPELINING");
        reply(session, "250-SIZE %" PRIu64, session->config->message_size_limit);
        reply(session, "250-8BITMIME");
        reply(session, "250-ENHANCEDSTATUSCODES");
        reply(session, "250-SMTPUTF8");
        reply(session, "250 CHUNKING");
        return;
    }
    reply(session, "250-PIPELINING");
    reply(session, "250-SIZE %" PRIu64, session->config->message_size_limit);
    reply(session, "250-8BITMIME");
    reply(session, "250-ENHANCEDSTATUSCODES");
    reply(session, "250-SMTPUTF8");
    reply(session, "250-CHUNKING");
    if (session->is_tls_offered && !session->is_tls) {
        reply(session, "250-STARTTLS");
    }
    if (is_auth_offered(session)) {
        reply(session, "250-AUTH PLAIN LOGIN");
    }
    reply(session, "250 DSN");
}

static bool
parse_u64(struct span text, uint64_t *value_out)
{
    if (text.len == 0 || text.len > 20) {
        return false;
    }
    uint64_t value = 0;
    for (size_t i = 0; i < text.len; i++) {
        char c = text.ptr[i];
        if (c < '0' || c > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(c - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
    }
    *value_out = value;
    return true;
}

static void
run_mail(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    struct smtp_txn *txn = &session->txn;
    ASSERT(txn->rcpt_count == 0);
    if (session->config->is_submission && session->user[0] == '\0') {
        reply_error(session, SMTP_REFUSAL_AUTH_REQUIRED, "530 5.7.0 Authentication required");
        return;
    }
    /* A MAIL refused half-way through its parameters must not leave them
     * behind for the next one. */
    memset(txn, 0, sizeof(*txn));
    bool is_smtputf8 = false;
    for (size_t i = 0; i < cmd->param_count; i++) {
        const struct smtp_param *param = &cmd->params[i];
        if (span_equals_nocase(param->keyword, "SIZE")) {
            uint64_t size;
            if (!param->has_value || !parse_u64(param->value, &size)) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Bad SIZE parameter");
                return;
            }
            if (size > session->config->message_size_limit) {
                reply_error(session, SMTP_REFUSAL_SIZE,
                            "552 5.3.4 Message size exceeds fixed limit");
                return;
            }
            txn->declared_size = size;
        } else if (span_equals_nocase(param->keyword, "BODY")) {
            if (param->has_value && span_equals_nocase(param->value, "7BIT")) {
                txn->body_type = SMTP_BODY_7BIT;
            } else if (param->has_value && span_equals_nocase(param->value, "8BITMIME")) {
                txn->body_type = SMTP_BODY_8BITMIME;
            } else {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "555 5.5.4 Unsupported BODY parameter");
                return;
            }
        } else if (span_equals_nocase(param->keyword, "SMTPUTF8")) {
            if (param->has_value) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 SMTPUTF8 takes no value");
                return;
            }
            is_smtputf8 = true;
        } else if (span_equals_nocase(param->keyword, "RET")) {
            if (param->has_value && span_equals_nocase(param->value, "FULL")) {
                txn->dsn_ret = SMTP_DSN_RET_FULL;
            } else if (param->has_value && span_equals_nocase(param->value, "HDRS")) {
                txn->dsn_ret = SMTP_DSN_RET_HDRS;
            } else {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Bad RET parameter");
                return;
            }
        } else if (span_equals_nocase(param->keyword, "ENVID")) {
            long n = param->has_value ? smtp_xtext_decode(param->value, txn->dsn_envid,
                                                         sizeof(txn->dsn_envid) - 1)
                                      : -1;
            if (n < 0) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Bad ENVID parameter");
                return;
            }
            txn->dsn_envid[n] = '\0';
        } else if (span_equals_nocase(param->keyword, "AUTH") && is_auth_offered(session)) {
            /* RFC 4954 5: who submitted it first; we do not pass it on. */
        } else {
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "555 5.5.4 Unsupported option: %.*s",
                        (int)(param->keyword.len > 64 ? 64 : param->keyword.len),
                        param->keyword.ptr);
            return;
        }
    }
    if (cmd->path.is_utf8 && !is_smtputf8) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    "553 5.6.7 Error: non-ASCII address needs SMTPUTF8");
        return;
    }
    if (cmd->path.mailbox.len >= sizeof(txn->mail_from)) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.1.7 Bad sender address syntax");
        return;
    }
    if (session->user[0] != '\0' && !cmd->path.is_null &&
        session->callbacks->sender_allowed != NULL &&
        !session->callbacks->sender_allowed(session->owner, session->user, cmd->path.mailbox)) {
        reply_error(session, SMTP_REFUSAL_SENDER_MISMATCH,
                    "553 5.7.1 <%.*s>: Sender address rejected: not owned by user %s",
                    (int)(cmd->path.mailbox.len > 256 ? 256 : cmd->path.mailbox.len),
                    cmd->path.mailbox.ptr, session->user);
        return;
    }
    if (!cmd->path.is_null) {
        memcpy(txn->mail_from, cmd->path.mailbox.ptr, cmd->path.mailbox.len);
    }
    txn->mail_from[cmd->path.is_null ? 0 : cmd->path.mailbox.len] = '\0';
    txn->is_smtputf8 = is_smtputf8;
    session_enter(session, SMTP_STATE_RCPT);
    reply(session, "250 2.1.0 Ok");
}

static bool
parse_notify(struct span value, uint32_t *notify_out)
{
    uint32_t notify = 0;
    size_t start = 0;
    for (size_t i = 0; i <= value.len; i++) {
        if (i < value.len && value.ptr[i] != ',') {
            continue;
        }
        struct span word = span_make(value.ptr + start, i - start);
        if (span_equals_nocase(word, "NEVER")) {
            notify |= SMTP_NOTIFY_NEVER;
        } else if (span_equals_nocase(word, "SUCCESS")) {
            notify |= SMTP_NOTIFY_SUCCESS;
        } else if (span_equals_nocase(word, "FAILURE")) {
            notify |= SMTP_NOTIFY_FAILURE;
        } else if (span_equals_nocase(word, "DELAY")) {
            notify |= SMTP_NOTIFY_DELAY;
        } else {
            return false;
        }
        start = i + 1;
    }
    /* RFC 3461 section 4.1: NEVER stands alone. */
    if ((notify & SMTP_NOTIFY_NEVER) && notify != SMTP_NOTIFY_NEVER) {
        return false;
    }
    *notify_out = notify;
    return true;
}

static void
run_rcpt(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    struct smtp_txn *txn = &session->txn;
    const struct smtp_path *path = &cmd->path;
    if (path->is_null) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    struct smtp_rcpt_request rcpt = { .path = path,
                                      .user = session->user[0] != '\0' ? session->user : NULL,
                                      .notify = 0,
                                      .orcpt = { NULL, 0 } };
    for (size_t i = 0; i < cmd->param_count; i++) {
        const struct smtp_param *param = &cmd->params[i];
        if (span_equals_nocase(param->keyword, "NOTIFY")) {
            if (!param->has_value || !parse_notify(param->value, &rcpt.notify)) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Bad NOTIFY parameter");
                return;
            }
        } else if (span_equals_nocase(param->keyword, "ORCPT")) {
            /* addr-type ";" xtext, RFC 3461 section 4.2; the address is
             * not optional, so an empty one is refused too. */
            const char *semi = param->has_value ? memchr(param->value.ptr, ';', param->value.len)
                                                : NULL;
            char scratch[SMTP_ADDRESS_BYTES_MAX];
            if (semi == NULL || semi == param->value.ptr ||
                smtp_xtext_decode(span_make(semi + 1, param->value.len -
                                                          (size_t)(semi + 1 - param->value.ptr)),
                                  scratch, sizeof(scratch)) <= 0) {
                reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Bad ORCPT parameter");
                return;
            }
            rcpt.orcpt = param->value;
        } else {
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "555 5.5.4 Unsupported option: %.*s",
                        (int)(param->keyword.len > 64 ? 64 : param->keyword.len),
                        param->keyword.ptr);
            return;
        }
    }
    if (txn->rcpt_count >= session->config->recipient_limit) {
        /* Not a client error: RFC 5321 4.5.3.1.10 expects the client to send
         * the rest in another transaction. */
        refuse(session, SMTP_REFUSAL_TOO_MANY_RECIPIENTS, "452 4.5.3 Error: too many recipients");
        return;
    }
    if (path->is_utf8 && !txn->is_smtputf8) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    "553 5.6.7 Error: non-ASCII address needs SMTPUTF8");
        return;
    }
    int shown = (int)(path->mailbox.len > 256 ? 256 : path->mailbox.len);
    switch (session->callbacks->rcpt(session->owner, &rcpt)) {
    case SMTP_RCPT_ACCEPT:
        if (txn->rcpt_count == 0) {
            ASSERT(path->mailbox.len < sizeof(txn->first_rcpt));
            memcpy(txn->first_rcpt, path->mailbox.ptr, path->mailbox.len);
            txn->first_rcpt[path->mailbox.len] = '\0';
        }
        txn->rcpt_count++;
        reply(session, "250 2.1.5 Ok");
        return;
    case SMTP_RCPT_UNKNOWN_USER:
        reply_owner_error(session,
                          "550 5.1.1 <%.*s>: Recipient address rejected: User unknown in local "
                          "recipient table",
                          shown, path->mailbox.ptr);
        return;
    case SMTP_RCPT_RELAY_DENIED:
        if (session->config->is_lmtp) {
            /* LMTP is final delivery: a recipient not here is no mailbox. */
            reply_owner_error(session,
                              "550 5.1.1 <%.*s>: Recipient address rejected: not a local "
                              "recipient (LMTP does not relay)",
                              shown, path->mailbox.ptr);
            return;
        }
        reply_owner_error(session, "554 5.7.1 <%.*s>: Relay access denied", shown,
                          path->mailbox.ptr);
        return;
    case SMTP_RCPT_TEMPFAIL:
        reply(session, "451 4.3.0 <%.*s>: Temporary lookup failure", shown, path->mailbox.ptr);
        return;
    case SMTP_RCPT_BAD_SYNTAX:
        reply_owner_error(session, "501 5.1.3 Bad recipient address syntax");
        return;
    case SMTP_RCPT_NO_RESOURCES:
        reply(session, "452 4.3.1 Insufficient system resources");
        return;
    case SMTP_RCPT_RATE_LIMITED:
        reply(session, "450 4.7.1 Error: too many messages from user %s this hour, try later",
              session->user);
        return;
    }
    ASSERT(false);
}

static void
run_data(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    if (session->txn.rcpt_count == 0) {
        /* RFC 2033 4.2: 503 in LMTP. */
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    session->config->is_lmtp ? "503 5.5.1 Error: no valid recipients"
                                             : "554 5.5.1 Error: no valid recipients");
        return;
    }
    session->txn.is_bdat = false;
    session_enter(session, SMTP_STATE_SPOOL_OPEN);
    request(session, SMTP_REQUEST_SPOOL_OPEN);
}

static void
run_bdat(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    session->bdat_remaining = cmd->bdat_size;
    session->is_bdat_last = cmd->bdat_last;
    int reject = 0;
    if (session->state == SMTP_STATE_CONNECTED || session->state == SMTP_STATE_READY) {
        reject = 503;
    } else if (session->state == SMTP_STATE_RCPT && session->txn.rcpt_count == 0) {
        reject = 554;
    }
    if (reject != 0) {
        /* Refused before a transaction exists: swallow the chunk, then reply
         * (RFC 3030 section 3: the bytes must still be read). */
        session->txn_reject = reject;
        session->bdat_return_state = session->state;
        session_enter(session, SMTP_STATE_BDAT);
        bdat_chunk_begin(session);
        return;
    }
    if (session->state == SMTP_STATE_RCPT) {
        session->txn.is_bdat = true;
        smtp_bdat_decoder_init(&session->bdat_decoder);
        smtp_hop_counter_init(&session->hops);
        session_enter(session, SMTP_STATE_SPOOL_OPEN);
        request(session, SMTP_REQUEST_SPOOL_OPEN);
        return;
    }
    ASSERT(session->state == SMTP_STATE_BDAT_NEXT);
    session_enter(session, SMTP_STATE_BDAT);
    bdat_chunk_begin(session);
}

static void
run_rset(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    if (session->state != SMTP_STATE_CONNECTED) {
        txn_reset(session);
        session_enter(session, SMTP_STATE_READY);
    }
    reply(session, "250 2.0.0 Ok");
}

static void
run_noop(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    reply(session, "250 2.0.0 Ok");
}

static void
run_quit(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    reply(session, "221 2.0.0 Bye");
    smtp_session_finish(session);
    session_enter(session, SMTP_STATE_CLOSING);
}

static void
run_vrfy(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    /* Never reveal whether a user exists (RFC 5321 section 3.5.3). */
    reply(session, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
run_expn(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    refuse(session, SMTP_REFUSAL_PROTOCOL, "502 5.5.1 Error: command not implemented");
}

static void
run_help(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    reply(session, "214-2.0.0 Commands supported:");
    if (session->config->is_lmtp) {
        reply(session, "214-2.0.0   LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
        reply(session, "214 2.0.0 See RFC 2033");
        return;
    }
    reply(session, "214-2.0.0   HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
    reply(session, "214 2.0.0 See RFC 5321");
}

/* RFC 3207. The reply goes out in plaintext; the owner starts TLS once it
 * is sent and throws away whatever the client pipelined after it. */
static void
run_starttls(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    if (session->is_tls) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "554 5.5.1 Error: TLS already active");
        return;
    }
    if (!session->is_tls_offered) {
        run_not_offered(session, cmd);
        return;
    }
    if (session->state != SMTP_STATE_CONNECTED && session->state != SMTP_STATE_READY) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    reply(session, "220 2.0.0 Ready to start TLS");
    request(session, SMTP_REQUEST_STARTTLS);
}

/* AUTH is offered on submission, and there only over TLS, on loopback,
 * or where the operator allowed plaintext passwords. */
static bool
is_auth_offered(const struct smtp_session *session)
{
    return session->config->is_submission &&
           (session->is_tls || session->is_loopback ||
            session->config->is_plaintext_auth_allowed);
}

/* Hand the credentials to the owner (a worker checks the hash). */
static void
sasl_verify(struct smtp_session *session)
{
    session->sasl = SMTP_SASL_NONE;
    request(session, SMTP_REQUEST_AUTH);
}

static void
sasl_fail(struct smtp_session *session, const char *text)
{
    session->sasl = SMTP_SASL_NONE;
    explicit_bzero(session->auth_user, sizeof(session->auth_user));
    explicit_bzero(session->auth_password, sizeof(session->auth_password));
    reply_error(session, SMTP_REFUSAL_PROTOCOL, "%s", text);
}

/* One step of PLAIN or LOGIN with the response b64 ("=": empty). */
static void
sasl_step(struct smtp_session *session, struct span b64)
{
    switch (session->sasl) {
    case SMTP_SASL_PLAIN:
        if (!sasl_plain_decode(b64, session->auth_user, sizeof(session->auth_user),
                               session->auth_password, sizeof(session->auth_password))) {
            sasl_fail(session, "501 5.5.2 Cannot decode response");
            return;
        }
        sasl_verify(session);
        return;
    case SMTP_SASL_LOGIN_USER:
        if (!sasl_text_decode(b64, session->auth_user, sizeof(session->auth_user))) {
            sasl_fail(session, "501 5.5.2 Cannot decode response");
            return;
        }
        session->sasl = SMTP_SASL_LOGIN_PASSWORD;
        reply(session, "334 UGFzc3dvcmQ6"); /* "Password:" */
        return;
    case SMTP_SASL_LOGIN_PASSWORD:
        if (!sasl_text_decode(b64, session->auth_password, sizeof(session->auth_password))) {
            sasl_fail(session, "501 5.5.2 Cannot decode response");
            return;
        }
        sasl_verify(session);
        return;
    case SMTP_SASL_NONE:
        break;
    }
    ASSERT(false);
}

/* A line while a SASL exchange runs: the client's response, or "*". */
static void
sasl_line(struct smtp_session *session)
{
    struct span line = span_make(session->line, session->line_len);
    if (line.len == 1 && line.ptr[0] == '*') {
        sasl_fail(session, "501 5.7.0 Authentication aborted");
        return;
    }
    sasl_step(session, line);
}

/* RFC 4954: AUTH mechanism [initial-response]. */
static void
run_auth(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    if (!session->config->is_submission) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (session->user[0] != '\0') {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (!is_auth_offered(session)) {
        reply_error(session, SMTP_REFUSAL_TLS_REQUIRED,
                    "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    if (session->state == SMTP_STATE_CONNECTED) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (session->state != SMTP_STATE_READY) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    struct span arg = cmd->argument;
    size_t sp = 0;
    while (sp < arg.len && arg.ptr[sp] != ' ') {
        sp++;
    }
    struct span mechanism = span_make(arg.ptr, sp);
    struct span initial = sp < arg.len ? span_make(arg.ptr + sp + 1, arg.len - sp - 1)
                                       : span_make(NULL, 0);
    if (mechanism.len == 0) {
        reply_error(session, SMTP_REFUSAL_PROTOCOL, "501 5.5.4 Syntax: AUTH mechanism");
        return;
    }
    if (span_equals_nocase(mechanism, "PLAIN")) {
        session->sasl = SMTP_SASL_PLAIN;
    } else if (span_equals_nocase(mechanism, "LOGIN")) {
        session->sasl = SMTP_SASL_LOGIN_USER;
    } else {
        reply_error(session, SMTP_REFUSAL_PROTOCOL,
                    "504 5.5.4 Unsupported authentication mechanism");
        return;
    }
    if (initial.len > 0) {
        sasl_step(session, initial);
        return;
    }
    reply(session, session->sasl == SMTP_SASL_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
}

static void
run_not_offered(struct smtp_session *session, const struct smtp_cmd *cmd)
{
    (void)cmd;
    reply_error(session, SMTP_REFUSAL_PROTOCOL, "502 5.5.1 Error: command not implemented");
}

/* ---- bodies -------------------------------------------------------------- */

static bool
body_is_discarding(const struct smtp_session *session)
{
    return session->is_oversize || session->spool_error != 0 || session->txn_reject != 0;
}

static void
check_oversize(struct smtp_session *session, uint64_t content_bytes)
{
    if (!session->is_oversize && content_bytes > session->config->message_size_limit) {
        /* Keep reading to the end so the stream stays in step, then 552 once. */
        session->is_oversize = true;
        session->body_len = 0;
    }
}

static size_t
feed_data(struct smtp_session *session, const uint8_t *in, size_t len)
{
    ASSERT(session->body != NULL);
    ASSERT(session->body_capacity - session->body_len >= 2);
    size_t in_used = 0;
    size_t out_len = 0;
    enum smtp_body_status status =
        smtp_data_decode(&session->data_decoder, in, len, &in_used,
                         session->body + session->body_len,
                         session->body_capacity - session->body_len, &out_len);
    smtp_hop_counter_feed(&session->hops, session->body + session->body_len, out_len);
    if (!body_is_discarding(session)) {
        session->body_len += out_len;
    }
    check_oversize(session, session->data_decoder.out_total);
    if (status == SMTP_BODY_DONE) {
        session->is_body_done = true;
        body_finished(session);
    } else if (session->body_capacity - session->body_len < 2) {
        request(session, SMTP_REQUEST_SPOOL_WRITE);
    }
    return in_used;
}

/* End of the body (DATA's final dot, or BDAT LAST): flush, then deliver or
 * refuse. Called again after each flush completes. */
static void
body_finished(struct smtp_session *session)
{
    ASSERT(session->is_body_done);
    ASSERT(session->request == SMTP_REQUEST_NONE);
    uint64_t bare_lf = session->txn.is_bdat ? session->bdat_decoder.bare_lf_count
                                            : session->data_decoder.bare_lf_count;
    const char *refusal = NULL;
    enum smtp_refusal reason = SMTP_REFUSAL_PROTOCOL;
    bool is_peer_error = true;
    if (session->txn_reject == 451 || session->spool_error != 0) {
        refusal = "451 4.3.0 Error: queue file write error";
        reason = SMTP_REFUSAL_LOCAL_ERROR;
        is_peer_error = false;
    } else if (session->is_oversize) {
        refusal = "552 5.3.4 Error: message file too big";
        reason = SMTP_REFUSAL_SIZE;
    } else if (bare_lf > 0 && session->config->reject_bare_lf) {
        refusal = "550 5.5.2 Error: bare <LF> received";
    } else if (session->config->hopcount_limit != 0 &&
               session->hops.received >= session->config->hopcount_limit) {
        /* A loop between servers, not this client's mistake. */
        refusal = "554 5.4.6 Error: too many hops";
        reason = SMTP_REFUSAL_HOP_LIMIT;
        is_peer_error = false;
    }
    if (refusal != NULL && session->config->is_lmtp) {
        /* The same refusal for every recipient (RFC 2033 4.2). */
        session_enter(session, SMTP_STATE_DELIVER);
        session->lmtp_refusal = refusal;
        session->lmtp_refusal_reason = reason;
        session->is_lmtp_refusal_peer_error = is_peer_error;
        session->lmtp_reply_index = 0;
        session->lmtp_reply_count = session->txn.rcpt_count;
        ASSERT(session->lmtp_reply_count > 0);
        lmtp_pump(session);
        return;
    }
    if (refusal != NULL) {
        if (is_peer_error) {
            reply_error(session, reason, "%s", refusal);
        } else {
            refuse(session, reason, "%s", refusal);
        }
        if (session->state != SMTP_STATE_CLOSING) {
            txn_end(session);
        }
        return;
    }
    if (session->body_len > 0) {
        request(session, SMTP_REQUEST_SPOOL_WRITE);
        return;
    }
    session_enter(session, SMTP_STATE_DELIVER);
    request(session, SMTP_REQUEST_DELIVER);
}

/* One byte of the body buffer stays free while a BDAT transfer runs, for
 * the CR the decoder may still hold back when LAST arrives. */
static bool
bdat_body_is_full(const struct smtp_session *session)
{
    return session->body_capacity - session->body_len < 3;
}

/* A chunk may be empty ("BDAT 0 LAST"): then it is finished at once. */
static void
bdat_chunk_begin(struct smtp_session *session)
{
    ASSERT(session->state == SMTP_STATE_BDAT);
    if (session->bdat_remaining == 0) {
        bdat_chunk_finished(session);
    }
}

static size_t
feed_bdat(struct smtp_session *session, const uint8_t *in, size_t len)
{
    ASSERT(session->bdat_remaining > 0);
    size_t take = len < session->bdat_remaining ? len : (size_t)session->bdat_remaining;
    size_t in_used = take;
    if (session->txn_reject != 0 || session->body == NULL) {
        /* Refused chunk: its bytes are read and dropped. */
        session->bdat_total += take;
    } else {
        ASSERT(!bdat_body_is_full(session));
        size_t out_len = 0;
        smtp_bdat_decode(&session->bdat_decoder, in, take, &in_used,
                         session->body + session->body_len,
                         session->body_capacity - session->body_len - 1, &out_len);
        smtp_hop_counter_feed(&session->hops, session->body + session->body_len, out_len);
        session->bdat_total += in_used;
        if (!body_is_discarding(session)) {
            session->body_len += out_len;
        }
        check_oversize(session, session->bdat_total);
    }
    ASSERT(in_used <= session->bdat_remaining);
    session->bdat_remaining -= in_used;
    if (session->bdat_remaining == 0) {
        bdat_chunk_finished(session);
    } else if (session->body != NULL && bdat_body_is_full(session)) {
        request(session, SMTP_REQUEST_SPOOL_WRITE);
    }
    return in_used;
}

static void
bdat_chunk_finished(struct smtp_session *session)
{
    ASSERT(session->state == SMTP_STATE_BDAT);
    ASSERT(session->bdat_remaining == 0);
    int reject = session->txn_reject;
    if (reject == 503 || reject == 554) {
        /* This chunk started no transaction; back to where we were. Its
         * bytes belong to no message, so they are not counted either. */
        session->txn_reject = 0;
        session->bdat_total = 0;
        session_enter(session, session->bdat_return_state);
        if (reject == 503) {
            reply_error(session, SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: need MAIL command");
        } else {
            reply_error(session, SMTP_REFUSAL_PROTOCOL,
                        session->config->is_lmtp ? "503 5.5.1 Error: no valid recipients"
                                                 : "554 5.5.1 Error: no valid recipients");
        }
        return;
    }
    if (session->is_bdat_last) {
        if (session->body != NULL && !body_is_discarding(session)) {
            ASSERT(session->body_capacity - session->body_len >= 1);
            session->body_len += smtp_bdat_finish(&session->bdat_decoder,
                                                  session->body + session->body_len,
                                                  session->body_capacity - session->body_len);
        }
        session->is_body_done = true;
        body_finished(session);
        return;
    }
    session_enter(session, SMTP_STATE_BDAT_NEXT);
    if (reject == 451 || session->spool_error != 0) {
        refuse(session, SMTP_REFUSAL_LOCAL_ERROR, "451 4.3.0 Error: queue file write error");
    } else if (session->is_oversize) {
        reply_error(session, SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big");
    } else {
        reply(session, "250 2.0.0 Ok: %" PRIu64 " octets received", session->bdat_total);
    }
    if (session->state == SMTP_STATE_BDAT_NEXT && session->body != NULL &&
        bdat_body_is_full(session)) {
        request(session, SMTP_REQUEST_SPOOL_WRITE);
    }
}

/* ---- LMTP: one reply per recipient ----------------------------------------- */

/* Give out the end-of-data replies while the output has room for one
 * more without passing the high mark (so every other reply still fits
 * after them), then end the transaction once the last is out. */
static void
lmtp_pump(struct smtp_session *session)
{
    ASSERT(session->config->is_lmtp);
    ASSERT(session->state == SMTP_STATE_DELIVER);
    ASSERT(session->request == SMTP_REQUEST_NONE);
    for (uint32_t steps = 0; session->lmtp_reply_index < session->lmtp_reply_count; steps++) {
        ASSERT(steps <= session->lmtp_reply_count);
        if (session->out_len + SMTP_REPLY_LINE_BYTES_MAX + 2 > SMTP_SEND_HIGH_BYTES) {
            return; /* smtp_session_output_sent comes back here */
        }
        if (session->lmtp_refusal != NULL) {
            refuse(session, session->lmtp_refusal_reason, "%s", session->lmtp_refusal);
        } else {
            char line[SMTP_REPLY_LINE_BYTES_MAX];
            line[0] = '\0';
            session->callbacks->rcpt_reply(session->owner, session->lmtp_reply_index, line,
                                           sizeof(line));
            line[sizeof(line) - 1] = '\0';
            ASSERT(line[0] >= '2' && line[0] <= '5'); /* the owner's reply, never empty */
            reply(session, "%s", line);
        }
        session->lmtp_reply_index++;
    }
    bool is_peer_error = session->lmtp_refusal != NULL && session->is_lmtp_refusal_peer_error;
    txn_end(session); /* clears the LMTP fields */
    if (is_peer_error && session->state != SMTP_STATE_CLOSING) {
        /* One mistake, however many recipients heard of it. */
        session->error_count++;
        if (session->error_count >= session->config->error_limit) {
            reply(session, "421 4.7.0 %s Error: too many errors", session->config->hostname);
            smtp_session_finish(session);
            session_enter(session, SMTP_STATE_CLOSING);
        }
    }
}
