/*
 * proto/imap/imap_session.h - one IMAP server conversation as a pure state
 * machine (RFC 9051 / RFC 3501): framing, states, and the commands that
 * need no mailbox (CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, LOGIN,
 * AUTHENTICATE PLAIN with SASL-IR, the IDLE "DONE" line). Every command
 * that touches mailboxes is checked against the state (BAD in the wrong
 * one) and handed to the owner as IMAP_REQUEST_COMMAND, which runs it
 * against the store and writes its responses, tagged reply included, into
 * its own output; imap_session_command_done() then moves the state
 * (selected, deselected, idling). STARTTLS plugs in beneath (next issue).
 *
 * Like smtp_session: fed bytes, produces reply bytes in a bounded output
 * buffer the owner sends, and asks the owner for slow work (verifying a
 * password) through one pending request that the owner takes and answers
 * later. No sockets, no allocation, no blocking; while a request is pending
 * the session consumes no input.
 *
 * Memory. The session itself is small (see IMAP_SESSION_BYTES_MAX, asserted
 * in the .c; 2,928 bytes): the reader state, a 2 KiB output buffer, the
 * copied tag and bounded credentials. The big pieces needed to read and
 * parse one command -- the command buffer (up to
 * IMAP_LINE_BYTES_MAX_DEFAULT + literals), the reader's literal table and
 * the parser's node array (IMAP_PARSER_NODES_DEFAULT nodes) -- are
 * "command scratch" borrowed from
 * the owner: the session calls callbacks->scratch_acquire() when bytes
 * arrive and it holds none, and callbacks->scratch_release() as soon as no
 * command is partly read (at the end of every imap_session_feed() that
 * leaves the reader between commands, and at finish). A reactor keeps a
 * small pool of scratches; only connections in the middle of a command
 * hold one, so an idle connection costs sizeof(struct imap_session) only.
 * When scratch_acquire() returns NULL the session consumes nothing and the
 * owner feeds again later (backpressure, not growth).
 */
#ifndef TOASTER_PROTO_IMAP_SESSION_H
#define TOASTER_PROTO_IMAP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_reader.h"

#define IMAP_SESSION_OUT_BYTES 2048
#define IMAP_SESSION_OUT_HIGH_BYTES (IMAP_SESSION_OUT_BYTES - 1024) /* stop reading above */
#define IMAP_SESSION_TAG_BYTES 64   /* longer tags on LOGIN/AUTHENTICATE get BAD */
#define IMAP_SESSION_USER_BYTES 256 /* user name incl. NUL */
#define IMAP_SESSION_PASS_BYTES 256 /* password incl. NUL */
#define IMAP_SESSION_ERROR_LIMIT_DEFAULT 20
/* Documented bound on sizeof(struct imap_session), asserted in the .c. */
#define IMAP_SESSION_BYTES_MAX (3u * 1024)

enum imap_state {
    IMAP_STATE_NOT_AUTHENTICATED,
    IMAP_STATE_AUTHENTICATED,
    IMAP_STATE_SELECTED, /* declared; not entered by this slice */
    IMAP_STATE_LOGOUT,   /* last reply queued; the owner closes after sending */
    IMAP_STATE_COUNT,
};

/* What the session asks its owner to do. At most one is outstanding. */
enum imap_request {
    IMAP_REQUEST_NONE,
    IMAP_REQUEST_AUTH,    /* verify imap_session_auth_user()/_password();
                           * answer imap_session_auth_done() */
    IMAP_REQUEST_COMMAND, /* run imap_session_command(); its responses and
                           * tagged reply are the owner's to write; answer
                           * imap_session_command_done() */
    IMAP_REQUEST_IDLE_DONE, /* the client ended IDLE: write pending updates
                             * and "tag OK", answer imap_session_command_done() */
    IMAP_REQUEST_STARTTLS, /* "OK Begin TLS" is queued: once it is sent, TLS
                            * begins and what the client sent after the
                            * command is thrown away; answer
                            * imap_session_tls_started() */
    IMAP_REQUEST_APPEND_DATA, /* a chunk of an APPEND message arrived
                               * (imap_session_append_chunk()): copy it
                               * before returning from the feed that made
                               * it, then imap_session_append_data_done() */
};

/* How a command run by the owner changed the session. */
enum imap_command_outcome {
    IMAP_OUTCOME_STAY,       /* no state change (also a failed command) */
    IMAP_OUTCOME_SELECTED,   /* SELECT succeeded (read-write) */
    IMAP_OUTCOME_EXAMINED,   /* EXAMINE succeeded (read-only) */
    IMAP_OUTCOME_DESELECTED, /* CLOSE, UNSELECT, or a failed SELECT */
    IMAP_OUTCOME_IDLE,       /* IDLE started ("+ idling" written): the next
                              * line must be DONE */
};

/* Command scratch lent by the owner (see the memory note above). buf is
 * the reader's command buffer; nodes the parser's array. */
struct imap_session_scratch {
    char *buf;
    size_t buf_bytes; /* >= reader inline_bytes_max; line_bytes_max +
                       * literal_bytes_max to reach every limit */
    struct imap_node *nodes;
    size_t nodes_max; /* IMAP_PARSER_NODES_DEFAULT is the norm */
    struct imap_parsed parsed; /* the command handed to the owner */
    struct imap_literal literals[IMAP_LITERALS_CEILING]; /* the reader's table */
};

struct imap_session_callbacks {
    /* Lend a scratch, or NULL when none is free (the session then consumes
     * nothing; feed again later). */
    struct imap_session_scratch *(*scratch_acquire)(void *owner);
    /* Take it back; the session no longer points into it. */
    void (*scratch_release)(void *owner, struct imap_session_scratch *scratch);
    /* Optional, for metrics: a tagged command was read, once per command
     * whether the session answers it or hands it over (IMAP_CMD_UNKNOWN
     * for a name we do not know and for a line that could not be read or
     * parsed; a refused or too big APPEND literal counts as APPEND). Not
     * called for the line that ends IDLE (DONE, or the BAD for anything
     * else) or a SASL response line. The call must not touch the session. */
    void (*command_read)(void *owner, enum imap_command command);
};

struct imap_session_config {
    const char *hostname;
    const char *version;              /* for ID, e.g. "0.1" */
    struct imap_reader_config reader; /* from imap_reader_config_default() */
    uint32_t error_limit;             /* BAD/NO protocol errors before BYE */
    bool is_plaintext_auth_allowed;   /* on insecure transports */
};

#define IMAP_ENABLED_IMAP4REV2 0x1u
#define IMAP_ENABLED_UTF8_ACCEPT 0x2u
#define IMAP_ENABLED_CONDSTORE 0x4u
#define IMAP_ENABLED_QRESYNC 0x8u

/* Embedded in the owner's connection slot; fields are private. */
struct imap_session {
    enum imap_state state;
    enum imap_request request;
    bool is_request_taken;
    bool is_secure;    /* transport is TLS or loopback (owner says) */
    bool is_tls_offered; /* STARTTLS may be offered */
    bool is_tls;       /* TLS is on beneath the session */
    bool is_sasl_wait; /* next line is a SASL response */
    bool is_idle;      /* next line must be DONE */
    bool is_readonly;  /* the selected mailbox was EXAMINEd */
    uint8_t enabled;   /* IMAP_ENABLED_* */
    uint32_t error_count;
    const struct imap_session_config *config;
    const struct imap_session_callbacks *callbacks;
    void *owner;
    struct imap_session_scratch *scratch; /* borrowed while mid-command */

    struct imap_reader reader;

    /* The command waiting for the owner or a SASL response. */
    char tag[IMAP_SESSION_TAG_BYTES];
    size_t tag_len;
    char user[IMAP_SESSION_USER_BYTES]; /* auth: user to verify; then canonical */
    char pass[IMAP_SESSION_PASS_BYTES]; /* wiped after use */

    char out[IMAP_SESSION_OUT_BYTES];
    size_t out_len;
};

/* Start a session: queues the greeting. is_secure: the transport is TLS
 * (imaps) or otherwise trusted. Nothing is allocated. */
void imap_session_init(struct imap_session *session, const struct imap_session_config *config,
                       const struct imap_session_callbacks *callbacks, void *owner, bool is_secure);

/* What the transport offers, right after init (the greeting is written
 * again with the right capabilities): is_tls_offered, STARTTLS can be
 * started; is_tls, TLS is already on (imaps), which makes it secure. */
void imap_session_set_tls(struct imap_session *session, bool is_tls_offered, bool is_tls);

/* Completion of IMAP_REQUEST_STARTTLS: TLS is on, the session is secure
 * and its capabilities change (RFC 9051 6.2.1: the client asks again). */
void imap_session_tls_started(struct imap_session *session);

/* Feed received bytes. Returns how many were consumed; feed the rest again
 * once imap_session_wants_input() is true (request answered, output
 * drained, scratch available). */
size_t imap_session_feed(struct imap_session *session, const char *in, size_t len);

/* True when the session can consume input now. */
bool imap_session_wants_input(const struct imap_session *session);

/* True when the owner should close once the output is sent. */
bool imap_session_is_closing(const struct imap_session *session);

/* True while a command is partly read, a SASL response is awaited or a
 * request is pending (owner: command timeout rather than idle timeout). */
bool imap_session_is_mid_command(const struct imap_session *session);

enum imap_state imap_session_state(const struct imap_session *session);

/* Take the pending request, if any, marking it in flight. */
enum imap_request imap_session_take_request(struct imap_session *session);

/* For IMAP_REQUEST_AUTH: the credentials (NUL-terminated, valid until
 * imap_session_auth_done()). */
const char *imap_session_auth_user(const struct imap_session *session);
const char *imap_session_auth_password(const struct imap_session *session);

/* Completion of IMAP_REQUEST_AUTH. ok: credentials good; canonical_user
 * (may be NULL: keep the given name) is the name the session reports. The
 * password is wiped either way. */
void imap_session_auth_done(struct imap_session *session, bool ok, const char *canonical_user);

/* For IMAP_REQUEST_COMMAND: the parsed command (tag, name, arguments),
 * valid until imap_session_command_done(). */
const struct imap_parsed *imap_session_command(const struct imap_session *session);

/* Completion of IMAP_REQUEST_COMMAND or IMAP_REQUEST_IDLE_DONE. The owner
 * has written the responses; outcome moves the state. */
void imap_session_command_done(struct imap_session *session, enum imap_command_outcome outcome);

/* For IMAP_REQUEST_APPEND_DATA: the chunk (borrows from the bytes given to
 * imap_session_feed(); offset/total say where it lies in the literal). */
const struct imap_reader_chunk *imap_session_append_chunk(const struct imap_session *session);
void imap_session_append_data_done(struct imap_session *session);

/* True when the pending request is IMAP_REQUEST_IDLE_DONE. */
bool imap_session_command_is_idle_done(const struct imap_session *session);

/* The tag of the command in progress (IDLE: for the reply to DONE). */
struct span imap_session_tag(const struct imap_session *session);

/* True while IDLE runs: the owner may write untagged updates at any time. */
bool imap_session_is_idle(const struct imap_session *session);

/* True when the selected mailbox is read-only (EXAMINE). */
bool imap_session_is_readonly(const struct imap_session *session);

/* Turn on IMAP_ENABLED_* bits from the owner's side (CONDSTORE is enabled
 * by its first use, RFC 7162 3.1). */
void imap_session_enable(struct imap_session *session, unsigned bits);

/* The authenticated user ("" before login). */
const char *imap_session_user(const struct imap_session *session);

/* IMAP_ENABLED_* bits the client has enabled. */
unsigned imap_session_enabled(const struct imap_session *session);

/* Reply bytes waiting; the owner sends them and reports how many went. */
struct span imap_session_output(const struct imap_session *session);
void imap_session_output_sent(struct imap_session *session, size_t bytes);

/* The idle timer fired: "* BYE Autologout; idle for too long", close. */
void imap_session_timeout(struct imap_session *session);

/* The daemon is stopping: "* BYE Server shutting down", close. */
void imap_session_shutdown(struct imap_session *session);

/* Session end: wipes credentials, gives back any scratch. A pending
 * request's completion must not be delivered after this. */
void imap_session_finish(struct imap_session *session);

const char *imap_state_name(enum imap_state state);

#endif
