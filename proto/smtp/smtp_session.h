/*
 * proto/smtp/smtp_session.h - one SMTP server conversation as a pure state
 * machine (RFC 5321 with PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES,
 * SMTPUTF8, CHUNKING and DSN).
 *
 * The session is fed bytes and produces reply bytes plus requests for the
 * work it cannot do itself: open a spool file, write body bytes to it, hand
 * the message over for delivery. It never touches a file descriptor, never
 * allocates and never blocks, so it is unit-tested and fuzzed without a
 * socket. The owner (the reactor glue, or a test) performs each request and
 * reports its completion; until then the session consumes no input.
 *
 * Recipient decisions are a synchronous callback (a memory lookup), so the
 * session stays ignorant of the users and aliases tables. Every refusal
 * the session decides itself is reported to the owner with its reason
 * (callbacks.refused, enum smtp_refusal), for the metrics.
 *
 * LMTP (RFC 2033, config.is_lmtp) is the same machine with three
 * differences: LHLO greets (HELO and EHLO are 500), DATA or BDAT without
 * an accepted recipient is 503, and the end of the data (the final dot,
 * or BDAT LAST) gets one reply per accepted recipient, in RCPT order:
 * the owner's (callbacks.rcpt_reply), or the same refusal for each when
 * the session itself refuses the message (too big, spool error).
 */
#ifndef TOASTER_PROTO_SMTP_SESSION_H
#define TOASTER_PROTO_SMTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/smtp/smtp_body.h"
#include "proto/smtp/smtp_hops.h"
#include "proto/smtp/smtp_parser.h"

#define SMTP_SEND_BUFFER_BYTES 4096
#define SMTP_SEND_HIGH_BYTES (SMTP_SEND_BUFFER_BYTES - 1024)
#define SMTP_QUEUE_ID_BYTES 24
#define SMTP_ENVID_BYTES 101 /* RFC 3461: at most 100 characters, plus NUL */
#define SMTP_AUTH_USER_BYTES 256     /* a login name, NUL included */
#define SMTP_AUTH_PASSWORD_BYTES 256

enum smtp_state {
    SMTP_STATE_CONNECTED,  /* banner sent, waiting for HELO/EHLO */
    SMTP_STATE_READY,      /* greeted, no transaction */
    SMTP_STATE_RCPT,       /* MAIL accepted, collecting recipients */
    SMTP_STATE_SPOOL_OPEN, /* waiting for the spool file (DATA or first BDAT) */
    SMTP_STATE_DATA,       /* streaming DATA bytes into the spool */
    SMTP_STATE_BDAT,       /* consuming the bytes of one BDAT chunk */
    SMTP_STATE_BDAT_NEXT,  /* between chunks: BDAT, RSET, NOOP, QUIT allowed */
    SMTP_STATE_DELIVER,    /* message handed over, final reply pending */
    SMTP_STATE_CLOSING,    /* last reply queued; the owner closes after sending */
    SMTP_STATE_COUNT,
};

/* What the session asks its owner to do. At most one is outstanding. */
enum smtp_request {
    SMTP_REQUEST_NONE,
    SMTP_REQUEST_SPOOL_OPEN,  /* create the spool file; answer smtp_session_spool_opened() */
    SMTP_REQUEST_SPOOL_WRITE, /* write smtp_session_body(); answer smtp_session_spool_written() */
    SMTP_REQUEST_DELIVER,     /* message complete; answer smtp_session_delivered() */
    SMTP_REQUEST_AUTH,        /* check smtp_session_auth_user()/_password(); answer
                               * smtp_session_auth_done() */
    SMTP_REQUEST_STARTTLS,    /* "220 Ready to start TLS" is queued: once it is sent, TLS
                               * begins and what the client sent after the command is
                               * thrown away; answer smtp_session_tls_started() */
};

enum smtp_rcpt_verdict {
    SMTP_RCPT_ACCEPT,
    SMTP_RCPT_UNKNOWN_USER,  /* 550 5.1.1 */
    SMTP_RCPT_RELAY_DENIED,  /* 554 5.7.1 */
    SMTP_RCPT_TEMPFAIL,      /* 451 4.3.0: our fault (alias loop, table trouble) */
    SMTP_RCPT_BAD_SYNTAX,    /* 501 5.1.3 */
    SMTP_RCPT_NO_RESOURCES,  /* 452 4.3.1: cannot record more */
    SMTP_RCPT_RATE_LIMITED,  /* 450 4.7.1: the user's messages per hour are used up */
};

enum smtp_body_type { SMTP_BODY_UNSPECIFIED, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_dsn_ret { SMTP_DSN_RET_UNSPECIFIED, SMTP_DSN_RET_FULL, SMTP_DSN_RET_HDRS };

/* RCPT-level DSN parameters (RFC 3461). */
#define SMTP_NOTIFY_NEVER 0x1u
#define SMTP_NOTIFY_SUCCESS 0x2u
#define SMTP_NOTIFY_FAILURE 0x4u
#define SMTP_NOTIFY_DELAY 0x8u

struct smtp_rcpt_request {
    const struct smtp_path *path;
    const char             *user;        /* the authenticated user, or NULL */
    uint32_t                notify;      /* SMTP_NOTIFY_* bits, 0 when not given */
    struct span             orcpt;       /* raw "rfc822;xtext" value, empty when not given */
};

/* The transaction as the owner sees it when delivering. */
struct smtp_txn {
    char                mail_from[SMTP_ADDRESS_BYTES_MAX + 1]; /* "" for <> */
    enum smtp_body_type body_type;
    enum smtp_dsn_ret   dsn_ret;
    char                dsn_envid[SMTP_ENVID_BYTES]; /* decoded; "" when not given */
    bool                is_smtputf8;
    uint64_t            declared_size; /* MAIL SIZE=, 0 when not given */
    uint32_t            rcpt_count;    /* accepted recipients */
    char                first_rcpt[SMTP_ADDRESS_BYTES_MAX + 1]; /* for Received "for" */
    uint64_t            body_bytes;    /* bytes written to the spool, trace headers included */
    bool                is_bdat;
};

/* Why the session itself refused a command or a message: the 4xx and 5xx
 * replies it writes without asking its owner (callbacks.refused). The
 * owner's own decisions (the rcpt verdicts, the delivered replies, the
 * LMTP rcpt_reply lines) are the owner's to count and are not reported. */
enum smtp_refusal {
    SMTP_REFUSAL_PROTOCOL,      /* 500, 501, 502, 503, 504, 555, 553 5.6.7, 554 5.5.1, bare
                                 * LF, a line too long, SASL responses we cannot decode or
                                 * that abort, and the 421 for too many junk commands */
    SMTP_REFUSAL_SIZE,          /* 552 5.3.4: SIZE= or the message over message_size_limit */
    SMTP_REFUSAL_AUTH_REQUIRED, /* 530 5.7.0: MAIL on submission before AUTH */
    SMTP_REFUSAL_TLS_REQUIRED,  /* 538 5.7.11: AUTH where it needs TLS first */
    SMTP_REFUSAL_AUTH_FAILED,   /* 535 5.7.8: the credentials are wrong */
    SMTP_REFUSAL_SENDER_MISMATCH, /* 553 5.7.1: MAIL FROM not the user's (sender_allowed) */
    SMTP_REFUSAL_TOO_MANY_RECIPIENTS, /* 452 4.5.3: past recipient_limit */
    SMTP_REFUSAL_HOP_LIMIT,     /* 554 5.4.6: hopcount_limit, a mail loop */
    SMTP_REFUSAL_LOCAL_ERROR,   /* 451 4.3.0 (the spool file), 454 4.7.0 (the password check) */
    SMTP_REFUSAL_COUNT,
};

struct smtp_session_callbacks {
    /* Decide on one recipient and, on ACCEPT, record where it goes. */
    enum smtp_rcpt_verdict (*rcpt)(void *owner, const struct smtp_rcpt_request *request);
    /* Forget the current transaction: recipients, spool file, buffers. Called
     * on RSET, HELO/EHLO, a refused message and session end. Idempotent. */
    void (*txn_abort)(void *owner);
    /* Optional: may user send as mailbox (MAIL FROM of an authenticated
     * session)? Postfix's reject_sender_login_mismatch. */
    bool (*sender_allowed)(void *owner, const char *user, struct span mailbox);
    /* LMTP only (required there): the reply line, without CRLF, of the
     * index-th accepted recipient (0 .. rcpt_count - 1), written into
     * reply (reply_bytes == SMTP_REPLY_LINE_BYTES_MAX). Asked after
     * smtp_session_delivered_each(), in order, each index once. */
    void (*rcpt_reply)(void *owner, uint32_t index, char *reply, size_t reply_bytes);
    /* Optional: the session refused with reason; reply is the reply line
     * just queued, without CRLF (it starts with its code; borrowed for the
     * call). Once per refusing reply (in LMTP, once per recipient's line),
     * never for the 421 that ends a session after error_limit, a timeout
     * or a shutdown. For metrics: the call must not touch the session. */
    void (*refused)(void *owner, enum smtp_refusal reason, struct span reply);
};

struct smtp_session_config {
    const char         *hostname;
    uint64_t            message_size_limit;
    uint32_t            recipient_limit;
    uint32_t            error_limit;
    uint32_t            junk_command_limit;
    bool                reject_bare_lf;
    /* Refuse a message with this many Received: fields or more (a loop,
     * RFC 5321 6.3; Postfix's hopcount_limit); 0: no limit. */
    uint32_t            hopcount_limit;
    /* Submission (587/465): AUTH is offered, and required before MAIL. */
    bool                is_submission;
    /* AUTH without TLS from peers that are not on loopback. */
    bool                is_plaintext_auth_allowed;
    /* LMTP (RFC 2033) instead of SMTP: see the top of this file. Never
     * together with is_submission. */
    bool                is_lmtp;
};

/* Where a SASL exchange (RFC 4954) stands. */
enum smtp_sasl {
    SMTP_SASL_NONE,
    SMTP_SASL_PLAIN,          /* "334 " sent: the PLAIN response is next */
    SMTP_SASL_LOGIN_USER,     /* "334 VXNlcm5hbWU6" sent */
    SMTP_SASL_LOGIN_PASSWORD, /* "334 UGFzc3dvcmQ6" sent */
};

struct smtp_session {
    enum smtp_state                     state;
    enum smtp_request                   request;       /* what the owner must do next */
    bool                                is_request_taken;
    const struct smtp_session_config   *config;
    const struct smtp_session_callbacks *callbacks;
    void                               *owner;

    char     client_address[64];  /* "192.0.2.1" or "IPv6:2001:db8::1" */
    char     helo[256];
    bool     is_esmtp;
    bool     is_tls_offered;      /* STARTTLS may be offered (smtp_session_set_tls) */
    bool     is_tls;              /* TLS is on beneath the session */
    bool     is_loopback;         /* the peer is on this machine (counts as secure) */
    enum smtp_sasl sasl;
    char     auth_user[SMTP_AUTH_USER_BYTES];         /* to verify (SMTP_REQUEST_AUTH) */
    char     auth_password[SMTP_AUTH_PASSWORD_BYTES]; /* wiped once checked */
    char     user[SMTP_AUTH_USER_BYTES]; /* authenticated as; "" before AUTH */
    char     tls_text[160];       /* "TLSv1.3 with cipher ... (256/256 bits)", for Received */
    bool     is_shutting_down;    /* finish the transaction, then 421 */
    uint32_t error_count;
    uint32_t junk_count;

    /* Command line assembly (no CRLF); bounded by SMTP_LINE_BYTES_MAX. */
    char     line[SMTP_LINE_BYTES_MAX + 1];
    size_t   line_len;
    bool     is_line_overflow;    /* discarding until the end of an overlong line */
    bool     is_cr_pending;       /* the last byte of the line so far was CR */

    struct smtp_txn txn;

    /* Body streaming into the spool. The buffer belongs to the owner. */
    uint8_t *body;
    size_t   body_capacity;
    size_t   body_len;
    struct smtp_data_decoder data_decoder;
    struct smtp_bdat_decoder bdat_decoder;
    struct smtp_hop_counter hops; /* Received: fields of the message being received */
    uint64_t bdat_remaining;      /* bytes of the current chunk still to consume */
    bool     is_bdat_last;
    uint64_t bdat_total;          /* bytes received over all chunks */
    bool     is_body_done;        /* end of data seen; flushing, then deliver */
    bool     is_oversize;
    int      spool_error;         /* first spool failure (-errno), drain then 451 */
    int      txn_reject;          /* BDAT: reply code to give every remaining chunk */
    enum smtp_state bdat_return_state; /* where a refused, transaction-less chunk returns */

    /* LMTP: the per-recipient replies at the end of the data, given out as
     * the output has room. lmtp_refusal (a literal) is everyone's reply
     * when the session refused the message itself, else the owner's
     * rcpt_reply gives each. */
    uint32_t    lmtp_reply_index;
    uint32_t    lmtp_reply_count;   /* 0: none pending */
    const char *lmtp_refusal;
    enum smtp_refusal lmtp_refusal_reason;
    bool        is_lmtp_refusal_peer_error;

    /* Replies waiting to be sent. */
    char     out[SMTP_SEND_BUFFER_BYTES];
    size_t   out_len;
};

/* Start a session: queues the 220 banner. The session is embedded in the
 * owner's connection slot; nothing is allocated. */
void smtp_session_init(struct smtp_session *session, const struct smtp_session_config *config,
                       const struct smtp_session_callbacks *callbacks, void *owner,
                       const char *client_address);

/* What the transport offers: is_tls_offered, STARTTLS can be started;
 * is_tls, TLS is already on (implicit TLS, port 465); is_loopback, the
 * peer is on this machine (AUTH without TLS is fine there, as in Dovecot).
 * Call after init. */
void smtp_session_set_transport(struct smtp_session *session, bool is_tls_offered, bool is_tls,
                                bool is_loopback);

/* For SMTP_REQUEST_AUTH: the credentials (NUL-terminated, valid until
 * smtp_session_auth_done). */
const char *smtp_session_auth_user(const struct smtp_session *session);
const char *smtp_session_auth_password(const struct smtp_session *session);

/* Completion of SMTP_REQUEST_AUTH: is_ok with the user's canonical name,
 * or a failure (the owner has already waited out its delay). */
void smtp_session_auth_done(struct smtp_session *session, bool is_ok, const char *canonical_user);

/* Completion of SMTP_REQUEST_AUTH when the check could not run (our own
 * trouble): 454, and the client may try again. */
void smtp_session_auth_tempfail(struct smtp_session *session);

/* The authenticated user, or "" before AUTH. */
const char *smtp_session_user(const struct smtp_session *session);

/* Completion of SMTP_REQUEST_STARTTLS: TLS is on. The session starts
 * over as after the banner (RFC 3207 4.2): the client must EHLO again. */
void smtp_session_tls_started(struct smtp_session *session);

/* After the handshake, for the Received header: the TLS version, cipher
 * and its bits. */
void smtp_session_tls_describe(struct smtp_session *session, const char *version,
                               const char *cipher, int bits);

/* Feed received bytes. Returns how many were consumed; the rest must be fed
 * again later, once smtp_session_wants_input() is true again (a request
 * completed, or output drained). */
size_t smtp_session_feed(struct smtp_session *session, const uint8_t *in, size_t len);

/* True when the session can consume input now. */
bool smtp_session_wants_input(const struct smtp_session *session);

/* True when the session is streaming a body (the owner uses the DATA timeout). */
bool smtp_session_is_receiving_body(const struct smtp_session *session);

/* True when the owner should close once the output is sent. */
bool smtp_session_is_closing(const struct smtp_session *session);

/* Take the pending request, if any, marking it in flight. */
enum smtp_request smtp_session_take_request(struct smtp_session *session);

/* Reply bytes waiting; the owner sends them and reports how many went. */
struct span smtp_session_output(const struct smtp_session *session);
void smtp_session_output_sent(struct smtp_session *session, size_t bytes);

/* Completion of SMTP_REQUEST_SPOOL_OPEN: result 0 with a body buffer (owned
 * by the owner, at least 2 * SMTP_LINE_BYTES_MAX bytes) and a queue id, or
 * -errno. now is the time for the Received header. */
void smtp_session_spool_opened(struct smtp_session *session, int result, uint8_t *body,
                               size_t body_capacity, const char *queue_id, time_t now);

/* The bytes to write for SMTP_REQUEST_SPOOL_WRITE. */
struct span smtp_session_body(const struct smtp_session *session);

/* Completion of SMTP_REQUEST_SPOOL_WRITE: 0 when every byte was written,
 * or -errno. */
void smtp_session_spool_written(struct smtp_session *session, int result);

/* Completion of SMTP_REQUEST_DELIVER: the final reply line without CRLF,
 * e.g. "250 2.0.0 Ok: queued as 4F3A2B9C" or "451 4.3.0 Error: ...". SMTP
 * only: LMTP answers with smtp_session_delivered_each(). */
void smtp_session_delivered(struct smtp_session *session, const char *reply);

/* Completion of SMTP_REQUEST_DELIVER in LMTP: every recipient's reply is
 * ready. The session asks callbacks.rcpt_reply for each, in RCPT order, as
 * its output has room: in this call and in later smtp_session_output_sent
 * calls. The transaction ends (txn_abort) after the last one, so the
 * owner's answers must stay valid until then. */
void smtp_session_delivered_each(struct smtp_session *session);

/* The idle or DATA timer fired: 421 and close. */
void smtp_session_timeout(struct smtp_session *session);

/* The daemon is stopping: close now if idle, else after this transaction. */
void smtp_session_shutdown(struct smtp_session *session);

/* Session end (peer gone or closed): aborts any transaction. */
void smtp_session_finish(struct smtp_session *session);

const char *smtp_state_name(enum smtp_state state);

#endif
