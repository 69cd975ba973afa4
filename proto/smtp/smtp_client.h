/*
 * proto/smtp/smtp_client.h - the SMTP client protocol (RFC 5321) for the
 * outbound delivery agent, as a state machine fed bytes: no sockets, no
 * timers, no allocation.
 *
 * The caller (the delivery agent on a reactor) owns the connection. It
 * feeds the server's bytes to smtp_client_feed() and gets events back; it
 * sends what smtp_client_output() shows and reports it with
 * smtp_client_output_consumed(); it streams message bodies itself (DATA:
 * through proto/smtp/smtp_dotstuff; BDAT: raw bytes after the BDAT command
 * this machine writes). Timers are the caller's: smtp_client_timeout_ms()
 * names the RFC 5321 section 4.5.3.2 timeout of the current wait.
 *
 * A session: greeting (220; anything else is SESSION_FAILED), EHLO, or HELO
 * when EHLO gets a 5xx (RFC 5321 section 3.2), then READY. From READY the
 * caller may: smtp_client_starttls() (220, TLS_GO; the caller runs the
 * handshake and calls smtp_client_tls_started(), which forgets every
 * capability and says EHLO again, RFC 3207 section 4.2),
 * smtp_client_auth_plain() (only over TLS), smtp_client_start_message(),
 * smtp_client_rset(), smtp_client_quit().
 *
 * A message: MAIL FROM with SIZE= (server has SIZE), BODY=8BITMIME (the
 * message needs it and the server has 8BITMIME), SMTPUTF8, RET= and ENVID=
 * (server has DSN); one RCPT TO per recipient with NOTIFY= and ORCPT= (DSN);
 * then DATA, or BDAT when the server has CHUNKING and the message asks for
 * it. With PIPELINING, MAIL, every RCPT and DATA go as one group (RFC 2920
 * section 3.1), written as output room allows; without it one command per
 * round trip. Each RCPT reply is an SMTP_CLIENT_EV_RCPT event; no accepted
 * recipient means no body and an RSET. The message ends with one
 * SMTP_CLIENT_EV_MESSAGE_DONE. After it, READY comes again (at once, or
 * after the RSET reply), so the connection can carry the next message.
 *
 * Refused before any command is written (smtp_client_start_message returns
 * an error; smtp_client_local_reply() gives the reply text for the DSN):
 * a message that needs 8BITMIME to a server without it (RFC 6152 allows a
 * relay to convert to 7 bit; we do not, we bounce: 554 5.6.3), SMTPUTF8
 * without it (553 5.6.7, RFC 6531 section 3.5), a size over the server's
 * SIZE (552 5.3.4, RFC 1870).
 *
 * How the agent reads results: a recipient's outcome is its RCPT event
 * when that was 4xx or 5xx; otherwise (accepted, or never answered because
 * MAIL failed) it is the MESSAGE_DONE result. An accepted RCPT is only
 * provisional: the message is delivered to it only when MESSAGE_DONE says
 * SMTP_CLIENT_RESULT_OK. LMTP (RFC 2033, later) will add one per-recipient
 * final event after the body for each accepted recipient, in RCPT order
 * (rcpt_index is already in every event), before MESSAGE_DONE.
 *
 * Peer errors (a line that is not a reply, any bound broken, a reply when
 * none was asked for, e.g. a server that answers more replies than there
 * were commands, a code that makes no sense for the command, plaintext
 * bytes after the 220 to STARTTLS) end the machine with
 * SMTP_CLIENT_EV_PROTOCOL_ERROR: close the connection; a message in
 * progress is deferred (if the final dot was already sent, the server may
 * have taken it: a possible duplicate, RFC 5321 section 6.1). 421 to any
 * command ends the session too (the server is closing): the message in
 * progress is done with that 4xx reply, then SMTP_CLIENT_EV_CLOSED.
 *
 * Programmer errors (a verb called in a state that does not allow it) are
 * ASSERTs. Bounds: reply parsing as in smtp_client_reply.h; commands at most
 * SMTP_CLIENT_COMMAND_BYTES_MAX; SMTP_CLIENT_OUT_BYTES of output buffer;
 * recipients per message 1..SMTP_RCPT_CEILING. Runs on one reactor thread.
 */
#ifndef TOASTER_PROTO_SMTP_CLIENT_H
#define TOASTER_PROTO_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/smtp/smtp_client_reply.h"

#define SMTP_CLIENT_OUT_BYTES 8192
/* One command line, CRLF included: RFC 5321 says 512; with ORCPT and
 * ENVID a line can be longer, and Postfix-like servers take 2048. */
#define SMTP_CLIENT_COMMAND_BYTES_MAX 2048
#define SMTP_CLIENT_HELO_BYTES_MAX 255
#define SMTP_CLIENT_ENVID_BYTES_MAX 100 /* RFC 3461 section 4.4 */
#define SMTP_CLIENT_ORCPT_BYTES_MAX 500 /* "rfc822;" + xtext */
#define SMTP_CLIENT_AUTH_BYTES_MAX 255  /* user or password */

/* RFC 5321 section 4.5.3.2, in milliseconds. */
#define SMTP_CLIENT_TIMEOUT_GREETING_MS (5 * 60 * 1000)
#define SMTP_CLIENT_TIMEOUT_COMMAND_MS (5 * 60 * 1000) /* EHLO, MAIL, RCPT, RSET, ... */
#define SMTP_CLIENT_TIMEOUT_DATA_INIT_MS (2 * 60 * 1000)
#define SMTP_CLIENT_TIMEOUT_DATA_BLOCK_MS (3 * 60 * 1000)
#define SMTP_CLIENT_TIMEOUT_DATA_END_MS (10 * 60 * 1000)

static_assert(SMTP_CLIENT_COMMAND_BYTES_MAX * 2 <= SMTP_CLIENT_OUT_BYTES,
              "output holds two commands");

enum smtp_client_state {
    SMTP_CLIENT_STATE_GREETING,      /* waiting for 220: TIMEOUT_GREETING */
    SMTP_CLIENT_STATE_EHLO,          /* EHLO sent: TIMEOUT_COMMAND */
    SMTP_CLIENT_STATE_HELO,          /* EHLO got 5xx, HELO sent: TIMEOUT_COMMAND */
    SMTP_CLIENT_STATE_READY,         /* idle; the caller picks the next verb (its idle timer) */
    SMTP_CLIENT_STATE_STARTTLS,      /* STARTTLS sent: TIMEOUT_COMMAND */
    SMTP_CLIENT_STATE_TLS_HANDSHAKE, /* 220 seen: the caller runs TLS; no bytes may come */
    SMTP_CLIENT_STATE_AUTH,          /* AUTH sent: TIMEOUT_COMMAND */
    SMTP_CLIENT_STATE_MAIL,          /* MAIL/RCPT(/DATA) sent: TIMEOUT_COMMAND, or
                                      * TIMEOUT_DATA_INIT once only DATA's reply is owed */
    SMTP_CLIENT_STATE_BODY,          /* the caller sends the body: TIMEOUT_DATA_BLOCK per write */
    SMTP_CLIENT_STATE_BDAT,          /* a BDAT chunk sent, its reply owed: TIMEOUT_DATA_END */
    SMTP_CLIENT_STATE_DATA_END,      /* final dot sent: TIMEOUT_DATA_END */
    SMTP_CLIENT_STATE_RSET,          /* RSET sent: TIMEOUT_COMMAND */
    SMTP_CLIENT_STATE_QUIT,          /* QUIT sent: TIMEOUT_COMMAND (or just close) */
    SMTP_CLIENT_STATE_CLOSED,        /* nothing more: close the connection */
    SMTP_CLIENT_STATE_FAILED,        /* protocol error: close the connection */
};

enum smtp_client_event_kind {
    SMTP_CLIENT_EV_READY,          /* idle and greeted: pick the next verb */
    SMTP_CLIENT_EV_TLS_GO,         /* 220 to STARTTLS: start TLS, then smtp_client_tls_started() */
    SMTP_CLIENT_EV_TLS_REFUSED,    /* STARTTLS refused (reply); READY follows, still plaintext */
    SMTP_CLIENT_EV_AUTH_DONE,      /* reply to AUTH: result OK or not; READY follows */
    SMTP_CLIENT_EV_RCPT,           /* rcpt_index's RCPT reply and result */
    SMTP_CLIENT_EV_SEND_BODY,      /* DATA: 354, stream the dot-stuffed body then
                                    * smtp_client_body_sent(); BDAT: call smtp_client_bdat() */
    SMTP_CLIENT_EV_MESSAGE_DONE,   /* the message's outcome: result, stage, reply */
    SMTP_CLIENT_EV_SESSION_FAILED, /* greeting, EHLO/HELO or RSET refused, or 421: the
                                    * session cannot carry mail; QUIT is queued or the
                                    * server is closing; CLOSED follows */
    SMTP_CLIENT_EV_CLOSED,         /* close the connection now */
    SMTP_CLIENT_EV_PROTOCOL_ERROR, /* the server broke the protocol: close now */
};

enum smtp_client_result {
    SMTP_CLIENT_RESULT_OK,    /* 2xx */
    SMTP_CLIENT_RESULT_DEFER, /* 4xx, or no reply (protocol error, 421): try again later */
    SMTP_CLIENT_RESULT_FAIL,  /* 5xx: bounce */
};

/* Which reply decided a MESSAGE_DONE. */
enum smtp_client_stage {
    SMTP_CLIENT_STAGE_MAIL,  /* MAIL FROM refused: applies to every recipient */
    SMTP_CLIENT_STAGE_RCPT,  /* no recipient accepted: see each RCPT event */
    SMTP_CLIENT_STAGE_DATA,  /* DATA (or a non-last BDAT) refused */
    SMTP_CLIENT_STAGE_FINAL, /* the reply to the final dot or BDAT LAST */
};

enum smtp_client_error {
    SMTP_CLIENT_ERR_NONE = 0,
    SMTP_CLIENT_ERR_REPLY,         /* reply syntax or bound: see reply_error */
    SMTP_CLIENT_ERR_UNEXPECTED,    /* a reply when no command was waiting for one */
    SMTP_CLIENT_ERR_BAD_CODE,      /* e.g. 354 to MAIL, 250 to DATA, 3xx to RCPT */
    SMTP_CLIENT_ERR_TLS_INJECTION, /* bytes after the 220 to STARTTLS, before TLS */
};

struct smtp_client_event {
    enum smtp_client_event_kind kind;
    /* The reply behind the event (all kinds but READY, CLOSED and some
     * PROTOCOL_ERRORs, where code is 0). text is borrowed from the client
     * and valid until the next smtp_client_* call. */
    struct smtp_client_reply reply;
    enum smtp_client_result result;           /* RCPT, AUTH_DONE, MESSAGE_DONE */
    size_t rcpt_index;                        /* RCPT: index into the message's rcpts */
    enum smtp_client_stage stage;             /* MESSAGE_DONE */
    bool is_reusable;                         /* MESSAGE_DONE: another message may follow */
    bool had_message;                         /* PROTOCOL_ERROR, SESSION_FAILED: a message
                                               * was in progress and is to be deferred */
    bool was_body_sent;                       /* ... and its final dot had been sent */
    enum smtp_client_error error;             /* PROTOCOL_ERROR */
    enum smtp_client_reply_error reply_error; /* PROTOCOL_ERROR with ERR_REPLY */
};

enum smtp_client_status {
    SMTP_CLIENT_NEED_MORE, /* the input is used up; feed more when it comes */
    SMTP_CLIENT_EVENT,     /* *event_out is set; call again with the rest */
};

/* What the server offered in its EHLO reply. */
#define SMTP_CLIENT_AUTH_PLAIN 1u
#define SMTP_CLIENT_AUTH_LOGIN 2u
#define SMTP_CLIENT_AUTH_CRAM_MD5 4u
#define SMTP_CLIENT_AUTH_XOAUTH2 8u

struct smtp_client_caps {
    bool is_esmtp;                /* EHLO accepted (false after the HELO fallback) */
    bool has_pipelining;          /* RFC 2920 */
    bool has_size;                /* RFC 1870 */
    uint64_t size_max_bytes;      /* SIZE's argument; 0: none given or 0 (no limit) */
    bool has_8bitmime;            /* RFC 6152 */
    bool has_smtputf8;            /* RFC 6531 */
    bool has_chunking;            /* RFC 3030 */
    bool has_starttls;            /* RFC 3207 */
    bool has_dsn;                 /* RFC 3461 */
    bool has_enhancedstatuscodes; /* RFC 2034 */
    uint32_t auth_mechs;          /* SMTP_CLIENT_AUTH_* bits (AUTH and AUTH=) */
};

/* NOTIFY= bits (RFC 3461 section 4.1); 0 means no NOTIFY parameter. */
#define SMTP_CLIENT_NOTIFY_NEVER 1u
#define SMTP_CLIENT_NOTIFY_SUCCESS 2u
#define SMTP_CLIENT_NOTIFY_FAILURE 4u
#define SMTP_CLIENT_NOTIFY_DELAY 8u

enum smtp_client_ret {
    SMTP_CLIENT_RET_NONE = 0, /* no RET parameter */
    SMTP_CLIENT_RET_FULL,
    SMTP_CLIENT_RET_HDRS,
};

struct smtp_client_rcpt {
    struct span address; /* "local@domain", no angle brackets, 1..SMTP_ADDRESS_BYTES_MAX */
    uint32_t notify;     /* SMTP_CLIENT_NOTIFY_* (NEVER alone) or 0 */
    struct span orcpt;   /* "rfc822;" + xtext as received, or empty */
};

struct smtp_client_message {
    struct span mail_from;                /* empty: the null sender <> */
    const struct smtp_client_rcpt *rcpts; /* borrowed until MESSAGE_DONE */
    size_t rcpt_count;                    /* 1..SMTP_RCPT_CEILING */
    uint64_t size_bytes;                  /* the message's size, for SIZE=; 0: unknown */
    bool needs_8bitmime;                  /* body has 8-bit bytes */
    bool needs_smtputf8;                  /* an address or header is UTF-8 */
    bool use_chunking;                    /* BDAT when the server has CHUNKING */
    enum smtp_client_ret ret;
    struct span envid; /* xtext as received, or empty */
};

struct smtp_client_params {
    struct span helo_name; /* our name for EHLO/HELO: 1..SMTP_CLIENT_HELO_BYTES_MAX */
};

/* The client state. The caller owns the memory (e.g. a connection slot);
 * every field is private: use the functions. */
struct smtp_client {
    enum smtp_client_state state;
    struct smtp_client_reply_parser parser;
    struct smtp_client_caps caps;
    char helo_name[SMTP_CLIENT_HELO_BYTES_MAX];
    size_t helo_len;
    bool is_tls;
    bool is_auth_cancelled;
    uint8_t out[SMTP_CLIENT_OUT_BYTES];
    size_t out_start;
    size_t out_end;
    struct smtp_client_event queued[4];
    size_t queued_count;
    /* The message in progress. */
    bool has_message;
    struct smtp_client_message msg;
    bool is_pipelined;
    bool is_bdat;
    bool is_mail_sent;
    bool is_mail_replied;
    bool is_mail_ok;
    size_t rcpt_sent_count;
    size_t rcpt_replied_count;
    size_t rcpt_ok_count;
    size_t rcpt_fail_count; /* 5xx */
    bool is_data_sent;
    bool is_data_discard; /* 354 with nobody accepted: "." sent */
    bool is_body_sent;
    bool is_bdat_last;
    /* The reply kept for a MESSAGE_DONE that comes later than it. */
    struct smtp_client_reply saved;
    char saved_text[SMTP_CLIENT_REPLY_TEXT_BYTES];
    enum smtp_client_stage saved_stage;
};

/* Start a session on a new connection: the next bytes are the greeting.
 * Returns 0, or -EINVAL when the HELO name is empty, too long or has bytes
 * outside printable ASCII. */
int smtp_client_init(struct smtp_client *client, const struct smtp_client_params *params);

/* Consume the server's bytes. Returns SMTP_CLIENT_EVENT with *event_out set
 * (and *in_used up to the end of the reply that caused it; call again with
 * the rest, also with in_len 0: an event can be queued behind another), or
 * SMTP_CLIENT_NEED_MORE when all input is used. In CLOSED and FAILED the
 * input is used and dropped. TLS_GO comes only when nothing followed the
 * 220 in the input; bytes right behind it are an injection attempt
 * (RFC 3207 section 6, CVE-2011-0411) and give PROTOCOL_ERROR instead, as
 * do bytes fed in TLS_HANDSHAKE. Bytes that arrive later belong to the
 * TLS engine, which will refuse them as a bad record. */
enum smtp_client_status smtp_client_feed(struct smtp_client *client, const uint8_t *in,
                                         size_t in_len, size_t *in_used,
                                         struct smtp_client_event *event_out);

/* Bytes to send now (may be empty); valid until the next smtp_client_*
 * call. Report what was sent with smtp_client_output_consumed(), which may
 * write more (pipelined RCPTs as room frees). Sent bytes are wiped, since
 * an AUTH line holds a password. */
struct span smtp_client_output(const struct smtp_client *client);
void smtp_client_output_consumed(struct smtp_client *client, size_t sent_bytes);

enum smtp_client_state smtp_client_state(const struct smtp_client *client);
const char *smtp_client_state_name(enum smtp_client_state state);
/* The RFC 5321 section 4.5.3.2 timeout for the current wait, or 0 in
 * READY, CLOSED and FAILED (no reply owed). */
uint32_t smtp_client_timeout_ms(const struct smtp_client *client);
/* The capabilities of the last EHLO (all false before and after HELO). */
const struct smtp_client_caps *smtp_client_caps(const struct smtp_client *client);

/* READY only. Writes STARTTLS; -ENOTSUP when the server did not offer it,
 * -EALREADY when TLS is already on. */
int smtp_client_starttls(struct smtp_client *client);
/* TLS_HANDSHAKE only: the handshake is done. Forgets the capabilities and
 * writes EHLO again; the next READY has the TLS session's capabilities. */
void smtp_client_tls_started(struct smtp_client *client);

/* READY only. AUTH PLAIN with an initial response (RFC 4954, RFC 4616),
 * authorisation identity empty. -EPERM before TLS (no password in clear),
 * -ENOTSUP when PLAIN was not offered, -EINVAL when user or password is
 * empty, too long or holds a NUL. AUTH_DONE gives the result. */
int smtp_client_auth_plain(struct smtp_client *client, struct span user, struct span password);

/* READY only. Begins a message: validates it, picks DATA or BDAT and
 * writes the first command(s). Returns 0, or (nothing written, the session
 * stays READY):
 *   -EINVAL        an address, ORCPT or ENVID empty/too long/with bytes that
 *                  cannot go on a command line; rcpt_count 0 or too many;
 *   -EMSGSIZE      size_bytes over the server's SIZE (552 5.3.4);
 *   -EPROTONOSUPPORT needs 8BITMIME, the server lacks it (554 5.6.3);
 *   -EILSEQ        needs SMTPUTF8, the server lacks it (553 5.6.7).
 * The message and its rcpts array must stay valid until MESSAGE_DONE. */
int smtp_client_start_message(struct smtp_client *client,
                              const struct smtp_client_message *message);

/* The reply text to record for a start_message error (for the DSN), e.g.
 * "554 5.6.3 ..."; NULL for errors that are ours, not the message's. */
const char *smtp_client_local_reply(int start_error);

/* BODY (DATA) only: the caller has sent the whole dot-stuffed body and its
 * terminator (smtp_dotstuff_finish). The final reply is awaited. */
void smtp_client_body_sent(struct smtp_client *client);

/* BODY (BDAT) only: writes "BDAT <chunk_bytes>[ LAST]". The caller sends
 * the output and then exactly chunk_bytes of the message, unchanged. A
 * non-last chunk's 2xx gives SEND_BODY again; LAST's reply ends the
 * message. */
void smtp_client_bdat(struct smtp_client *client, uint64_t chunk_bytes, bool is_last);

/* READY only: writes RSET (e.g. to probe a cached connection before reuse,
 * as Postfix does); READY follows its 2xx. */
void smtp_client_rset(struct smtp_client *client);

/* Any state but CLOSED and FAILED: writes QUIT; CLOSED follows its reply.
 * Use it from READY; elsewhere it abandons what is in progress. */
void smtp_client_quit(struct smtp_client *client);

const char *smtp_client_event_name(enum smtp_client_event_kind kind);

#endif
