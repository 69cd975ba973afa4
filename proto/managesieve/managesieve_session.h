/*
 * proto/managesieve/managesieve_session.h - one ManageSieve server
 * conversation (RFC 5804) as a pure state machine: the greeting and
 * CAPABILITY, STARTTLS, AUTHENTICATE "PLAIN" (with or without an initial
 * response, "*" to cancel), NOOP (with its TAG), UNAUTHENTICATE, LOGOUT,
 * and the checking of every script command's state and arguments. What
 * needs the store (PUTSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT,
 * DELETESCRIPT, RENAMESCRIPT, CHECKSCRIPT, HAVESPACE) is handed to the
 * owner as one request, whose reply the owner writes.
 *
 * Like the IMAP and SMTP sessions: fed bytes, it writes replies into a
 * bounded output buffer and asks its owner for slow work (a password
 * check, a script operation) through one pending request; while a request
 * is pending it consumes no input. No sockets, no blocking. A script body
 * (PUTSCRIPT, CHECKSCRIPT) arrives in a buffer the owner lends for that
 * command (config.reader.big_acquire), bounded by the script size limit.
 */
#ifndef TOASTER_PROTO_MANAGESIEVE_SESSION_H
#define TOASTER_PROTO_MANAGESIEVE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/span.h"
#include "proto/managesieve/managesieve_reader.h"

#define MANAGESIEVE_SESSION_OUT_BYTES 4096
#define MANAGESIEVE_SESSION_USER_BYTES 256 /* incl. NUL */
#define MANAGESIEVE_SESSION_PASS_BYTES 256 /* incl. NUL */
#define MANAGESIEVE_SCRIPT_NAME_BYTES_MAX 128 /* octets of UTF-8 */
#define MANAGESIEVE_SESSION_ERROR_LIMIT_DEFAULT 20

enum managesieve_state {
    MANAGESIEVE_STATE_NOT_AUTHENTICATED,
    MANAGESIEVE_STATE_AUTHENTICATED,
    MANAGESIEVE_STATE_LOGOUT, /* last reply queued: close once it is sent */
};

/* What the session asks its owner to do; at most one at a time. */
enum managesieve_request {
    MANAGESIEVE_REQUEST_NONE,
    MANAGESIEVE_REQUEST_AUTH,     /* check ..._auth_user()/_password(); answer ..._auth_done() */
    MANAGESIEVE_REQUEST_STARTTLS, /* "OK" is queued: once sent TLS begins and what the
                                   * client sent after the command is thrown away;
                                   * answer ..._tls_started() */
    MANAGESIEVE_REQUEST_SCRIPT,   /* run ..._script(): the owner writes the whole reply
                                   * and answers ..._script_done() */
};

enum managesieve_script_op {
    MANAGESIEVE_OP_PUTSCRIPT,    /* name, script */
    MANAGESIEVE_OP_LISTSCRIPTS,
    MANAGESIEVE_OP_SETACTIVE,    /* name ("" deactivates) */
    MANAGESIEVE_OP_GETSCRIPT,    /* name */
    MANAGESIEVE_OP_DELETESCRIPT, /* name */
    MANAGESIEVE_OP_RENAMESCRIPT, /* name, new_name */
    MANAGESIEVE_OP_CHECKSCRIPT,  /* script */
    MANAGESIEVE_OP_HAVESPACE,    /* name, size */
};

/* A script command whose state and arguments are checked: names are valid
 * script names (RFC 5804 section 1.6), borrowed from the session. */
struct managesieve_script_request {
    enum managesieve_script_op op;
    struct span name;
    struct span new_name;
    struct span script;
    uint32_t size; /* HAVESPACE */
};

struct managesieve_session_config {
    const char *implementation; /* "toaster 0.1" */
    const char *sieve_extensions; /* the "SIEVE" capability: space-separated */
    uint32_t max_redirects;     /* MAXREDIRECTS; 0: not advertised */
    uint32_t error_limit;       /* failed commands before BYE */
    bool is_plaintext_auth_allowed; /* PLAIN on an insecure transport */
    struct managesieve_reader_config reader;
};

/* Embedded in the owner's connection state; fields are private. */
struct managesieve_session {
    enum managesieve_state state;
    enum managesieve_request request;
    bool is_request_taken;
    bool is_secure;      /* TLS or a trusted (loopback) transport */
    bool is_tls;
    bool is_tls_offered;
    bool is_sasl_wait;   /* the next line is a SASL response */
    uint32_t error_count;
    const struct managesieve_session_config *config;
    struct managesieve_reader reader;
    struct managesieve_script_request script;
    char user[MANAGESIEVE_SESSION_USER_BYTES];
    char pass[MANAGESIEVE_SESSION_PASS_BYTES];
    char out[MANAGESIEVE_SESSION_OUT_BYTES];
    size_t out_len;
};

/* Start: queues the capabilities and the greeting. is_secure: the
 * transport is trusted (loopback) or TLS; is_tls_offered: STARTTLS may be
 * offered; is_tls: TLS is on from the first byte. */
void managesieve_session_init(struct managesieve_session *session,
                              const struct managesieve_session_config *config, bool is_secure,
                              bool is_tls_offered, bool is_tls);

/* Feed bytes; returns how many were consumed. Feed the rest once
 * ..._wants_input() is true again. */
size_t managesieve_session_feed(struct managesieve_session *session, const char *in, size_t len);
bool managesieve_session_wants_input(const struct managesieve_session *session);
bool managesieve_session_is_closing(const struct managesieve_session *session);
/* A command is partly read or a request is pending (command timeout). */
bool managesieve_session_is_mid_command(const struct managesieve_session *session);
enum managesieve_state managesieve_session_state(const struct managesieve_session *session);

/* Take the pending request, if any, marking it in flight. */
enum managesieve_request managesieve_session_take_request(struct managesieve_session *session);

const char *managesieve_session_auth_user(const struct managesieve_session *session);
const char *managesieve_session_auth_password(const struct managesieve_session *session);
/* ok: the credentials are good; canonical_user (NULL: as given) is who is
 * logged in. The password is wiped either way. */
void managesieve_session_auth_done(struct managesieve_session *session, bool ok,
                                   const char *canonical_user);

/* TLS is on: the capabilities are sent again, then OK (RFC 5804 2.2). */
void managesieve_session_tls_started(struct managesieve_session *session);

/* The script command to run, valid until ..._script_done(). */
const struct managesieve_script_request *
managesieve_session_script(const struct managesieve_session *session);
/* The owner wrote the command's reply; the session reads on. is_failure
 * counts a NO against the error limit. */
void managesieve_session_script_done(struct managesieve_session *session, bool is_failure);

/* The daemon stops: BYE is queued and the session closes. */
void managesieve_session_shutdown(struct managesieve_session *session);
/* The client was silent too long. */
void managesieve_session_timeout(struct managesieve_session *session);

/* The logged-in user ("" before). */
const char *managesieve_session_user(const struct managesieve_session *session);

/* Reply bytes waiting; the owner sends them and reports how many went. */
struct span managesieve_session_output(const struct managesieve_session *session);
void managesieve_session_output_sent(struct managesieve_session *session, size_t bytes);

/* Release what the reader holds (the connection ends). */
void managesieve_session_finish(struct managesieve_session *session);

/* RFC 5804 section 1.6: a script name is non-empty UTF-8 of at most
 * MANAGESIEVE_SCRIPT_NAME_BYTES_MAX octets without control characters
 * (U+0000-001F, U+007F-009F, U+2028, U+2029); toaster also refuses "/"
 * and a leading "." since names become file names. */
bool managesieve_script_name_is_valid(struct span name);

/* Append text as a ManageSieve string (quoted when it can be, else a
 * literal {N}) to out; false when it does not fit in out_bytes. */
bool managesieve_string_append(char *out, size_t out_bytes, size_t *out_len, struct span text);

#endif
