/*
 * proto/imap/imap_session.c - the IMAP session state machine: greeting,
 * CAPABILITY, NOOP, LOGOUT, ID, ENABLE, NAMESPACE, LOGIN, AUTHENTICATE
 * PLAIN, IDLE's DONE, and the state checks of every mailbox command before
 * it goes to the owner.
 *
 * Owns the session state, the reply buffer and the copied credentials while
 * they are verified. Does not verify passwords (IMAP_REQUEST_AUTH), run
 * mailbox commands (IMAP_REQUEST_COMMAND), touch sockets or allocate; the
 * command buffer and parser nodes are borrowed scratch (see
 * imap_session.h) and stay borrowed while the owner runs a command. Runs on the reactor thread that owns the
 * connection.
 * Limits: the IMAP_* rows of core/limits.h (through the reader config),
 * IMAP_SESSION_* in the header, config->error_limit.
 *
 * AUTHENTICATE without an initial response sends "+ " and reads the
 * client's answer through the same reader: in is_sasl_wait mode the next
 * framed "command" is taken whole as the SASL response line (base64 has no
 * '{', so a conforming client never announces a literal there; one that
 * does gets the literal refused and BAD).
 */
#define _GNU_SOURCE
#include "proto/imap/imap_session.h"

#include <string.h>

#include "core/assertions.h"
#include "core/sasl.h"
#include "proto/imap/imap_quote.h"

static_assert(sizeof(struct imap_session) <= IMAP_SESSION_BYTES_MAX,
              "an idle IMAP session must stay small");
static_assert(IMAP_SESSION_OUT_HIGH_BYTES > 0, "output high-water mark");

/* What is really served. */
#define CAPS_COMMON "IMAP4rev1 IMAP4rev2 LITERAL+ ENABLE ID IDLE NAMESPACE UNSELECT"
#define CAPS_PREAUTH_PLAIN CAPS_COMMON " SASL-IR AUTH=PLAIN"
#define CAPS_PREAUTH_NOPLAIN CAPS_COMMON " SASL-IR LOGINDISABLED"
#define CAPS_PREAUTH_PLAIN_STARTTLS CAPS_COMMON " STARTTLS SASL-IR AUTH=PLAIN"
#define CAPS_PREAUTH_NOPLAIN_STARTTLS CAPS_COMMON " STARTTLS SASL-IR LOGINDISABLED"
#define CAPS_AUTH                                                                                  \
    CAPS_COMMON " UTF8=ACCEPT CHILDREN SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH BINARY"    \
                " CONDSTORE QRESYNC UIDPLUS MOVE"

static void handle_command(struct imap_session *session);
static void greet(struct imap_session *session);
static void cmd_starttls(struct imap_session *session, struct span tag,
                         const struct imap_parsed *p);
static void handle_sasl_response(struct imap_session *session, struct span line);
static void handle_idle_line(struct imap_session *session);
static void forward(struct imap_session *session, struct span tag, const struct imap_parsed *p);
static void cmd_capability(struct imap_session *session, struct span tag);
static void cmd_id(struct imap_session *session, struct span tag, const struct imap_parsed *p);
static void cmd_enable(struct imap_session *session, struct span tag, const struct imap_parsed *p);
static void cmd_login(struct imap_session *session, struct span tag, const struct imap_parsed *p);
static void cmd_authenticate(struct imap_session *session, struct span tag,
                             const struct imap_parsed *p);
static bool plain_decode(struct imap_session *session, struct span b64);
static bool astring_copy(const struct imap_parsed *p, uint32_t index, char *out, size_t out_bytes);
static void tag_save(struct imap_session *session, struct span tag);
static void reply(struct imap_session *session, struct span tag, const char *text);
static void reply_bad(struct imap_session *session, struct span tag, const char *text);
static void out_cstr(struct imap_session *session, const char *s);
static void out_bytes(struct imap_session *session, const char *s, size_t n);
static void bye(struct imap_session *session, const char *text);
static const char *caps(const struct imap_session *session);
static bool is_plain_allowed(const struct imap_session *session);
static bool caps_has(const struct imap_session *session, const char *word);
static void credentials_wipe(struct imap_session *session);
static void scratch_release(struct imap_session *session);
static void command_report(struct imap_session *session, enum imap_command command);
static enum imap_command command_dropped(const struct imap_session *session);

void
imap_session_init(struct imap_session *session, const struct imap_session_config *config,
                  const struct imap_session_callbacks *callbacks, void *owner, bool is_secure)
{
    ASSERT(session != NULL);
    ASSERT(config != NULL && config->hostname != NULL);
    ASSERT(callbacks != NULL && callbacks->scratch_acquire != NULL &&
           callbacks->scratch_release != NULL);
    ASSERT(strpbrk(config->hostname, "\r\n") == NULL);
    ASSERT(config->error_limit > 0);
    memset(session, 0, sizeof(*session));
    session->state = IMAP_STATE_NOT_AUTHENTICATED;
    session->config = config;
    session->callbacks = callbacks;
    session->owner = owner;
    session->is_secure = is_secure;
    greet(session);
}

void
imap_session_set_tls(struct imap_session *session, bool is_tls_offered, bool is_tls)
{
    ASSERT(session->state == IMAP_STATE_NOT_AUTHENTICATED && session->scratch == NULL &&
           session->request == IMAP_REQUEST_NONE);
    session->is_tls_offered = is_tls_offered;
    session->is_tls = is_tls;
    session->is_secure = session->is_secure || is_tls;
    /* Only the greeting is queued: say it again with these capabilities. */
    session->out_len = 0;
    greet(session);
}

void
imap_session_tls_started(struct imap_session *session)
{
    ASSERT(session->request == IMAP_REQUEST_STARTTLS && session->is_request_taken);
    session->request = IMAP_REQUEST_NONE;
    session->is_request_taken = false;
    session->is_tls = true;
    session->is_secure = true;
}

size_t
imap_session_feed(struct imap_session *session, const char *in, size_t len)
{
    ASSERT(session != NULL);
    size_t used_total = 0;
    /* Each round consumes bytes or stops: the reader reports at most one
     * event per call and never returns an event without progress except
     * FATAL, which closes the session. */
    while (used_total < len && imap_session_wants_input(session)) {
        if (session->scratch == NULL) {
            struct imap_session_scratch *s = session->callbacks->scratch_acquire(session->owner);
            if (s == NULL) {
                break;
            }
            ASSERT(s->buf != NULL && s->nodes != NULL && s->nodes_max >= 1);
            session->scratch = s;
            imap_reader_init(&session->reader, &session->config->reader, s->buf, s->buf_bytes,
                             s->literals);
        }
        size_t used = 0;
        enum imap_reader_event ev =
            imap_reader_feed(&session->reader, in + used_total, len - used_total, &used);
        used_total += used;
        struct span tag = imap_reader_tag(&session->reader);
        switch (ev) {
        case IMAP_READER_NEED_MORE:
            break;
        case IMAP_READER_CONTINUE:
            if (session->is_sasl_wait) {
                imap_reader_refuse_literal(&session->reader);
                session->is_sasl_wait = false;
                reply_bad(session, span_make(session->tag, session->tag_len),
                          "Invalid SASL PLAIN response.");
            } else if (imap_reader_command(&session->reader).is_append &&
                       (session->state == IMAP_STATE_NOT_AUTHENTICATED || session->is_idle)) {
                /* Do not let a client send a message we would only throw
                 * away. */
                command_report(session, IMAP_CMD_APPEND);
                imap_reader_refuse_literal(&session->reader);
                reply_bad(session, tag, "Not authenticated.");
            } else {
                out_cstr(session, "+ OK\r\n");
            }
            break;
        case IMAP_READER_LITERAL_DATA:
            /* An APPEND message in chunks: the owner stores each one before
             * the session reads on. Before login (LITERAL+ lets a client
             * send it unasked) it is dropped and the command gets BAD. */
            if (session->state != IMAP_STATE_NOT_AUTHENTICATED && !session->is_sasl_wait &&
                !session->is_idle) {
                session->request = IMAP_REQUEST_APPEND_DATA;
                session->is_request_taken = false;
            }
            break;
        case IMAP_READER_COMMAND:
            if (session->is_idle) {
                handle_idle_line(session);
            } else if (session->is_sasl_wait) {
                struct imap_command_text text = imap_reader_command(&session->reader);
                handle_sasl_response(session, text.literal_count > 0
                                                  ? span_make(NULL, 0)
                                                  : span_make(text.text, text.len));
            } else {
                handle_command(session);
            }
            break;
        case IMAP_READER_TOO_BIG:
            if (session->is_sasl_wait) {
                session->is_sasl_wait = false;
                tag = span_make(session->tag, session->tag_len);
            } else {
                command_report(session, command_dropped(session));
            }
            session->error_count++;
            reply(session, tag, "NO [TOOBIG] Literal too big.");
            break;
        case IMAP_READER_ERROR:
            if (session->is_sasl_wait) {
                session->is_sasl_wait = false;
                tag = span_make(session->tag, session->tag_len);
            } else {
                command_report(session, command_dropped(session));
            }
            reply_bad(session, tag,
                      imap_reader_error(&session->reader) == IMAP_READER_LINE_TOO_LONG
                          ? "Command line too long."
                          : "Malformed command line.");
            break;
        case IMAP_READER_FATAL:
            bye(session, "Too much invalid input.");
            break;
        }
        if (ev == IMAP_READER_NEED_MORE) {
            break;
        }
        if (session->error_count >= session->config->error_limit &&
            session->state != IMAP_STATE_LOGOUT) {
            bye(session, "Too many errors.");
        }
    }
    if (session->scratch != NULL && session->request != IMAP_REQUEST_COMMAND &&
        session->request != IMAP_REQUEST_APPEND_DATA &&
        (session->state == IMAP_STATE_LOGOUT || !imap_reader_is_mid_command(&session->reader))) {
        scratch_release(session);
    }
    return used_total;
}

bool
imap_session_wants_input(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->state != IMAP_STATE_LOGOUT && session->request == IMAP_REQUEST_NONE &&
           session->out_len < IMAP_SESSION_OUT_HIGH_BYTES;
}

bool
imap_session_is_closing(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->state == IMAP_STATE_LOGOUT;
}

bool
imap_session_is_mid_command(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->scratch != NULL || session->is_sasl_wait ||
           session->request != IMAP_REQUEST_NONE;
}

enum imap_state
imap_session_state(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->state;
}

enum imap_request
imap_session_take_request(struct imap_session *session)
{
    ASSERT(session != NULL);
    if (session->request == IMAP_REQUEST_NONE || session->is_request_taken) {
        return IMAP_REQUEST_NONE;
    }
    session->is_request_taken = true;
    return session->request;
}

const char *
imap_session_auth_user(const struct imap_session *session)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_AUTH);
    return session->user;
}

const char *
imap_session_auth_password(const struct imap_session *session)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_AUTH);
    return session->pass;
}

void
imap_session_auth_done(struct imap_session *session, bool ok, const char *canonical_user)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_AUTH);
    explicit_bzero(session->pass, sizeof(session->pass));
    session->request = IMAP_REQUEST_NONE;
    session->is_request_taken = false;
    struct span tag = span_make(session->tag, session->tag_len);
    if (session->state == IMAP_STATE_LOGOUT) {
        return; /* timed out or shut down meanwhile */
    }
    if (!ok) {
        explicit_bzero(session->user, sizeof(session->user));
        session->error_count++;
        reply(session, tag, "NO [AUTHENTICATIONFAILED] Authentication failed.");
        if (session->error_count >= session->config->error_limit) {
            bye(session, "Too many errors.");
        }
        return;
    }
    if (canonical_user != NULL) {
        size_t n = strnlen(canonical_user, sizeof(session->user));
        ASSERT(n < sizeof(session->user));
        memcpy(session->user, canonical_user, n + 1);
    }
    session->state = IMAP_STATE_AUTHENTICATED;
    out_bytes(session, tag.ptr, tag.len);
    out_cstr(session, " OK [CAPABILITY ");
    out_cstr(session, caps(session));
    out_cstr(session, "] Logged in\r\n");
}

const struct imap_parsed *
imap_session_command(const struct imap_session *session)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_COMMAND);
    ASSERT(session->scratch != NULL);
    return &session->scratch->parsed;
}

void
imap_session_command_done(struct imap_session *session, enum imap_command_outcome outcome)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_COMMAND ||
           session->request == IMAP_REQUEST_IDLE_DONE);
    session->request = IMAP_REQUEST_NONE;
    session->is_request_taken = false;
    if (session->state != IMAP_STATE_LOGOUT) {
        switch (outcome) {
        case IMAP_OUTCOME_STAY:
            break;
        case IMAP_OUTCOME_SELECTED:
        case IMAP_OUTCOME_EXAMINED:
            ASSERT(session->state == IMAP_STATE_AUTHENTICATED ||
                   session->state == IMAP_STATE_SELECTED);
            session->state = IMAP_STATE_SELECTED;
            session->is_readonly = outcome == IMAP_OUTCOME_EXAMINED;
            break;
        case IMAP_OUTCOME_DESELECTED:
            session->state = IMAP_STATE_AUTHENTICATED;
            session->is_readonly = false;
            break;
        case IMAP_OUTCOME_IDLE:
            session->is_idle = true;
            break;
        }
    }
    /* The command is over; its text and tree may go. */
    if (session->scratch != NULL && !imap_reader_is_mid_command(&session->reader)) {
        scratch_release(session);
    }
}

const struct imap_reader_chunk *
imap_session_append_chunk(const struct imap_session *session)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_APPEND_DATA);
    return imap_reader_chunk(&session->reader);
}

void
imap_session_append_data_done(struct imap_session *session)
{
    ASSERT(session != NULL);
    ASSERT(session->request == IMAP_REQUEST_APPEND_DATA);
    session->request = IMAP_REQUEST_NONE;
    session->is_request_taken = false;
}

bool
imap_session_command_is_idle_done(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->request == IMAP_REQUEST_IDLE_DONE;
}

struct span
imap_session_tag(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return span_make(session->tag, session->tag_len);
}

bool
imap_session_is_idle(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->is_idle && session->state != IMAP_STATE_LOGOUT;
}

bool
imap_session_is_readonly(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->is_readonly;
}

void
imap_session_enable(struct imap_session *session, unsigned bits)
{
    ASSERT(session != NULL);
    if (bits & IMAP_ENABLED_QRESYNC) {
        bits |= IMAP_ENABLED_CONDSTORE;
    }
    session->enabled |= (uint8_t)bits;
}

const char *
imap_session_user(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->state == IMAP_STATE_AUTHENTICATED || session->state == IMAP_STATE_SELECTED
               ? session->user
               : "";
}

unsigned
imap_session_enabled(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return session->enabled;
}

struct span
imap_session_output(const struct imap_session *session)
{
    ASSERT(session != NULL);
    return span_make(session->out, session->out_len);
}

void
imap_session_output_sent(struct imap_session *session, size_t bytes)
{
    ASSERT(session != NULL);
    ASSERT(bytes <= session->out_len);
    memmove(session->out, session->out + bytes, session->out_len - bytes);
    session->out_len -= bytes;
}

void
imap_session_timeout(struct imap_session *session)
{
    ASSERT(session != NULL);
    if (session->state != IMAP_STATE_LOGOUT) {
        bye(session, "Autologout; idle for too long");
    }
}

void
imap_session_shutdown(struct imap_session *session)
{
    ASSERT(session != NULL);
    if (session->state != IMAP_STATE_LOGOUT) {
        bye(session, "Server shutting down");
    }
}

void
imap_session_finish(struct imap_session *session)
{
    ASSERT(session != NULL);
    credentials_wipe(session);
    scratch_release(session);
    session->state = IMAP_STATE_LOGOUT;
}

const char *
imap_state_name(enum imap_state state)
{
    switch (state) {
    case IMAP_STATE_NOT_AUTHENTICATED:
        return "not-authenticated";
    case IMAP_STATE_AUTHENTICATED:
        return "authenticated";
    case IMAP_STATE_SELECTED:
        return "selected";
    case IMAP_STATE_LOGOUT:
        return "logout";
    case IMAP_STATE_COUNT:
        break;
    }
    return "?";
}

/* --- commands ---------------------------------------------------------- */

static void
handle_command(struct imap_session *session)
{
    struct imap_command_text text = imap_reader_command(&session->reader);
    struct imap_parsed p;
    unsigned flags = (session->enabled & IMAP_ENABLED_UTF8_ACCEPT) ? IMAP_PARSE_F_UTF8 : 0;
    enum imap_parse_error err =
        imap_parser_parse(&text, flags, session->scratch->nodes, session->scratch->nodes_max, &p);
    command_report(session, p.command); /* IMAP_CMD_UNKNOWN when it has no name we know */
    struct span tag = p.tag;
    if (err == IMAP_PARSE_BAD_TAG || tag.len >= sizeof(session->tag)) {
        reply_bad(session, span_make(NULL, 0), "Invalid tag.");
        return;
    }
    if (err == IMAP_PARSE_UNKNOWN_COMMAND || err == IMAP_PARSE_NO_COMMAND) {
        reply_bad(session, tag, "Unknown command.");
        return;
    }
    if (err != IMAP_PARSE_OK) {
        reply_bad(session, tag, "Invalid arguments.");
        return;
    }
    bool is_pre = session->state == IMAP_STATE_NOT_AUTHENTICATED;
    uint32_t args = p.nodes[0].child_count;
    switch (p.command) {
    case IMAP_CMD_CAPABILITY:
        cmd_capability(session, tag);
        return;
    case IMAP_CMD_NOOP:
        if (args != 0) {
            reply_bad(session, tag, "NOOP takes no arguments.");
            return;
        }
        if (session->state == IMAP_STATE_SELECTED) {
            forward(session, tag, &p); /* reports the mailbox's changes */
            return;
        }
        reply(session, tag, "OK NOOP completed.");
        return;
    case IMAP_CMD_LOGOUT:
        out_cstr(session, "* BYE Logging out\r\n");
        reply(session, tag, "OK Logout completed.");
        credentials_wipe(session);
        session->state = IMAP_STATE_LOGOUT;
        return;
    case IMAP_CMD_ID:
        cmd_id(session, tag, &p);
        return;
    case IMAP_CMD_ENABLE:
        if (is_pre) {
            reply_bad(session, tag, "ENABLE needs authentication.");
            return;
        }
        cmd_enable(session, tag, &p);
        return;
    case IMAP_CMD_LOGIN:
        if (!is_pre) {
            reply_bad(session, tag, "Already authenticated.");
            return;
        }
        cmd_login(session, tag, &p);
        return;
    case IMAP_CMD_AUTHENTICATE:
        if (!is_pre) {
            reply_bad(session, tag, "Already authenticated.");
            return;
        }
        cmd_authenticate(session, tag, &p);
        return;
    case IMAP_CMD_NAMESPACE:
        if (is_pre) {
            reply_bad(session, tag, "Not authenticated.");
            return;
        }
        if (args != 0) {
            reply_bad(session, tag, "NAMESPACE takes no arguments.");
            return;
        }
        /* One personal namespace, Maildir++ style, as Dovecot's default. */
        out_cstr(session, "* NAMESPACE ((\"\" \".\")) NIL NIL\r\n");
        reply(session, tag, "OK Namespace completed.");
        return;
    case IMAP_CMD_CHECK:
    case IMAP_CMD_CLOSE:
    case IMAP_CMD_UNSELECT:
    case IMAP_CMD_EXPUNGE:
    case IMAP_CMD_SEARCH:
    case IMAP_CMD_FETCH:
    case IMAP_CMD_STORE:
    case IMAP_CMD_COPY:
    case IMAP_CMD_MOVE:
        if (session->state != IMAP_STATE_SELECTED) {
            reply_bad(session, tag, is_pre ? "Not authenticated." : "No mailbox selected.");
            return;
        }
        forward(session, tag, &p);
        return;
    case IMAP_CMD_STARTTLS:
        cmd_starttls(session, tag, &p);
        return;
    case IMAP_CMD_SORT:
    case IMAP_CMD_THREAD:
    case IMAP_CMD_GETQUOTA:
    case IMAP_CMD_GETQUOTAROOT:
    case IMAP_CMD_SETQUOTA:
    case IMAP_CMD_GETMETADATA:
    case IMAP_CMD_SETMETADATA:
    case IMAP_CMD_COMPRESS:
    case IMAP_CMD_NOTIFY:
        /* Known names, not advertised: a client that sends them anyway
         * gets the answer for an unknown command. */
        reply_bad(session, tag, "Unsupported command.");
        return;
    default:
        break;
    }
    /* AUTHENTICATED-state commands (SELECT, LIST, APPEND, IDLE ...). */
    if (is_pre) {
        reply_bad(session, tag, "Not authenticated.");
        return;
    }
    forward(session, tag, &p);
}

/* Hand a mailbox command to the owner; the scratch stays with it. */
static void
forward(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    ASSERT(session->scratch != NULL);
    session->scratch->parsed = *p;
    tag_save(session, tag);
    session->request = IMAP_REQUEST_COMMAND;
    session->is_request_taken = false;
}

/* While IDLE runs the only valid line is DONE (RFC 2177). */
static void
handle_idle_line(struct imap_session *session)
{
    struct imap_command_text text = imap_reader_command(&session->reader);
    session->is_idle = false;
    if (text.literal_count == 0 && text.len == 4 &&
        span_equals_nocase(span_make(text.text, text.len), "DONE")) {
        session->request = IMAP_REQUEST_IDLE_DONE;
        session->is_request_taken = false;
        return;
    }
    reply_bad(session, span_make(session->tag, session->tag_len), "Expected DONE.");
}

static void
greet(struct imap_session *session)
{
    out_cstr(session, "* OK [CAPABILITY ");
    out_cstr(session, caps(session));
    out_cstr(session, "] ");
    /* A hostname with CR/LF would break the protocol; the config checks it. */
    out_cstr(session, session->config->hostname);
    out_cstr(session, " ready.\r\n");
}

/* RFC 9051 6.2.1: only before authentication; the tagged OK goes out in
 * plaintext and TLS begins right after it. */
static void
cmd_starttls(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    if (!session->is_tls_offered || session->is_tls) {
        reply_bad(session, tag, session->is_tls ? "TLS is already active." : "Unsupported command.");
        return;
    }
    if (session->state != IMAP_STATE_NOT_AUTHENTICATED) {
        reply_bad(session, tag, "Already authenticated.");
        return;
    }
    if (p->nodes[0].child_count != 0) {
        reply_bad(session, tag, "STARTTLS takes no arguments.");
        return;
    }
    reply(session, tag, "OK Begin TLS negotiation now.");
    session->request = IMAP_REQUEST_STARTTLS;
    session->is_request_taken = false;
}

static void
cmd_capability(struct imap_session *session, struct span tag)
{
    out_cstr(session, "* CAPABILITY ");
    out_cstr(session, caps(session));
    out_cstr(session, "\r\n");
    reply(session, tag, "OK Capability completed.");
}

/* RFC 2971: "ID" SP ("(" field value ... ")" / NIL). Read leniently: any
 * list of strings or NIL is accepted; the values are not kept (a later
 * slice may log them). */
static void
cmd_id(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    const struct imap_node *root = &p->nodes[0];
    if (root->child_count != 1) {
        reply_bad(session, tag, "ID takes one argument.");
        return;
    }
    const struct imap_node *arg = &p->nodes[1];
    if (arg->kind != IMAP_NODE_NIL && arg->kind != IMAP_NODE_LIST) {
        reply_bad(session, tag, "Invalid ID argument.");
        return;
    }
    out_cstr(session, "* ID (\"name\" \"toaster\" \"version\" ");
    struct imap_out o;
    imap_out_init(&o, session->out + session->out_len, sizeof(session->out) - session->out_len);
    const char *v = session->config->version != NULL ? session->config->version : "0";
    imap_out_string(&o, v, strnlen(v, 64), 0);
    ASSERT(!o.is_overflow);
    session->out_len += o.len;
    out_cstr(session, ")\r\n");
    reply(session, tag, "OK ID completed.");
}

static void
cmd_enable(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    if (p->nodes[0].child_count == 0) {
        reply_bad(session, tag, "ENABLE needs a capability.");
        return;
    }
    unsigned newly = 0;
    for (uint32_t i = imap_node_first_child(p, 0); i != IMAP_NODE_NONE; i = imap_node_next(p, i)) {
        const struct imap_node *n = &p->nodes[i];
        if (n->kind != IMAP_NODE_ATOM) {
            reply_bad(session, tag, "Invalid ENABLE argument.");
            return;
        }
        if (span_equals_nocase(n->text, "IMAP4rev2")) {
            newly |= IMAP_ENABLED_IMAP4REV2;
        } else if (span_equals_nocase(n->text, "UTF8=ACCEPT")) {
            newly |= IMAP_ENABLED_UTF8_ACCEPT;
        } else if (span_equals_nocase(n->text, "CONDSTORE") && caps_has(session, "CONDSTORE")) {
            newly |= IMAP_ENABLED_CONDSTORE;
        } else if (span_equals_nocase(n->text, "QRESYNC") && caps_has(session, "QRESYNC")) {
            newly |= IMAP_ENABLED_QRESYNC | IMAP_ENABLED_CONDSTORE;
        }
    }
    /* RFC 5161: list only what this command newly enabled. */
    unsigned fresh = newly & ~(unsigned)session->enabled;
    session->enabled |= (uint8_t)newly;
    out_cstr(session, "* ENABLED");
    if (fresh & IMAP_ENABLED_IMAP4REV2) {
        out_cstr(session, " IMAP4rev2");
    }
    if (fresh & IMAP_ENABLED_UTF8_ACCEPT) {
        out_cstr(session, " UTF8=ACCEPT");
    }
    if (fresh & IMAP_ENABLED_CONDSTORE) {
        out_cstr(session, " CONDSTORE");
    }
    if (fresh & IMAP_ENABLED_QRESYNC) {
        out_cstr(session, " QRESYNC");
    }
    out_cstr(session, "\r\n");
    reply(session, tag, "OK Enabled.");
}

static void
cmd_login(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    if (p->nodes[0].child_count != 2) {
        reply_bad(session, tag, "LOGIN needs a user name and a password.");
        return;
    }
    if (!is_plain_allowed(session)) {
        session->error_count++;
        reply(session, tag,
              "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
              "non-secure connections.");
        return;
    }
    uint32_t u = imap_node_first_child(p, 0);
    uint32_t w = imap_node_next(p, u);
    if (!astring_copy(p, u, session->user, sizeof(session->user)) ||
        !astring_copy(p, w, session->pass, sizeof(session->pass))) {
        credentials_wipe(session);
        reply_bad(session, tag, "Invalid user name or password argument.");
        return;
    }
    tag_save(session, tag);
    session->request = IMAP_REQUEST_AUTH;
    session->is_request_taken = false;
}

static void
cmd_authenticate(struct imap_session *session, struct span tag, const struct imap_parsed *p)
{
    uint32_t n = p->nodes[0].child_count;
    if (n < 1 || n > 2 || p->nodes[1].kind != IMAP_NODE_ATOM) {
        reply_bad(session, tag, "AUTHENTICATE needs a mechanism.");
        return;
    }
    if (!span_equals_nocase(p->nodes[1].text, "PLAIN")) {
        reply(session, tag, "NO Unsupported authentication mechanism.");
        return;
    }
    if (!is_plain_allowed(session)) {
        session->error_count++;
        reply(session, tag,
              "NO [PRIVACYREQUIRED] Plaintext authentication disallowed on "
              "non-secure connections.");
        return;
    }
    tag_save(session, tag);
    if (n == 1) {
        out_cstr(session, "+ \r\n");
        session->is_sasl_wait = true;
        return;
    }
    const struct imap_node *ir = &p->nodes[imap_node_next(p, 1)];
    if (ir->kind != IMAP_NODE_ATOM) {
        reply_bad(session, tag, "Invalid initial response.");
        return;
    }
    handle_sasl_response(session, ir->text);
}

/* The PLAIN response (initial or after "+ "); the tag is in session->tag. */
static void
handle_sasl_response(struct imap_session *session, struct span line)
{
    struct span tag = span_make(session->tag, session->tag_len);
    session->is_sasl_wait = false;
    if (line.len == 1 && line.ptr[0] == '*') {
        reply_bad(session, tag, "Authentication cancelled.");
        return;
    }
    if (!plain_decode(session, line)) {
        credentials_wipe(session);
        reply_bad(session, tag, "Invalid SASL PLAIN response.");
        return;
    }
    session->request = IMAP_REQUEST_AUTH;
    session->is_request_taken = false;
}

/* --- helpers ----------------------------------------------------------- */

/* PLAIN straight into session->user / session->pass (core/sasl). */
static bool
plain_decode(struct imap_session *session, struct span b64)
{
    return sasl_plain_decode(b64, session->user, sizeof(session->user), session->pass,
                             sizeof(session->pass));
}

/* An astring argument copied NUL-terminated; no NUL inside, must fit. */
static bool
astring_copy(const struct imap_parsed *p, uint32_t index, char *out, size_t out_bytes)
{
    const struct imap_node *n = &p->nodes[index];
    if (!imap_node_is_string(n) || (n->flags & (IMAP_NODE_F_NUL | IMAP_NODE_F_BINARY)) != 0) {
        return false;
    }
    size_t len;
    if (n->kind == IMAP_NODE_QUOTED && (n->flags & IMAP_NODE_F_ESCAPED) != 0) {
        long r = imap_parser_unquote(n->text, out, out_bytes - 1);
        if (r < 0) {
            return false;
        }
        len = (size_t)r;
    } else {
        if (n->text.len >= out_bytes) {
            return false;
        }
        memcpy(out, n->text.ptr, n->text.len);
        len = n->text.len;
    }
    if (memchr(out, '\0', len) != NULL) {
        return false;
    }
    out[len] = '\0';
    return true;
}

/* Keep the tag for a reply given after the scratch is gone. */
static void
tag_save(struct imap_session *session, struct span tag)
{
    /* handle_command() refused longer tags already. */
    ASSERT(tag.len > 0 && tag.len < sizeof(session->tag));
    memcpy(session->tag, tag.ptr, tag.len);
    session->tag_len = tag.len;
}

/* "tag text" or "* text" when there is no usable tag. */
static void
reply(struct imap_session *session, struct span tag, const char *text)
{
    if (tag.len > 0 && tag.len < sizeof(session->tag)) {
        out_bytes(session, tag.ptr, tag.len);
    } else {
        out_cstr(session, "*");
    }
    out_cstr(session, " ");
    out_cstr(session, text);
    out_cstr(session, "\r\n");
}

static void
reply_bad(struct imap_session *session, struct span tag, const char *text)
{
    session->error_count++;
    if (tag.len > 0 && tag.len < sizeof(session->tag)) {
        out_bytes(session, tag.ptr, tag.len);
    } else {
        out_cstr(session, "*");
    }
    out_cstr(session, " BAD ");
    out_cstr(session, text);
    out_cstr(session, "\r\n");
}

static void
out_cstr(struct imap_session *session, const char *s)
{
    out_bytes(session, s, strlen(s));
}

/* Replies are bounded: input stops above IMAP_SESSION_OUT_HIGH_BYTES; one
 * command adds a few hundred bytes at most (tags echoed are shorter than
 * IMAP_SESSION_TAG_BYTES, longer ones are answered untagged, the ID version
 * is cut at 64 bytes), and after it at most an auth completion and one BYE
 * can follow before the owner drains, all well inside the 1 KiB above the
 * mark. So running out of room is a programmer error. */
static void
out_bytes(struct imap_session *session, const char *s, size_t n)
{
    size_t room = sizeof(session->out) - session->out_len;
    ASSERT(n <= room);
    memcpy(session->out + session->out_len, s, n);
    session->out_len += n;
}

static void
bye(struct imap_session *session, const char *text)
{
    out_cstr(session, "* BYE ");
    out_cstr(session, text);
    out_cstr(session, "\r\n");
    credentials_wipe(session);
    session->is_sasl_wait = false;
    session->state = IMAP_STATE_LOGOUT;
}

static const char *
caps(const struct imap_session *session)
{
    if (session->state == IMAP_STATE_NOT_AUTHENTICATED) {
        if (session->is_tls_offered && !session->is_tls) {
            return is_plain_allowed(session) ? CAPS_PREAUTH_PLAIN_STARTTLS
                                             : CAPS_PREAUTH_NOPLAIN_STARTTLS;
        }
        return is_plain_allowed(session) ? CAPS_PREAUTH_PLAIN : CAPS_PREAUTH_NOPLAIN;
    }
    return CAPS_AUTH;
}

/* Is the capability word advertised now? (ENABLE may only turn on what
 * is offered.) */
static bool
caps_has(const struct imap_session *session, const char *word)
{
    const char *list = caps(session);
    size_t n = strlen(word);
    for (const char *p = strstr(list, word); p != NULL; p = strstr(p + 1, word)) {
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static bool
is_plain_allowed(const struct imap_session *session)
{
    return session->is_secure || session->config->is_plaintext_auth_allowed;
}

static void
credentials_wipe(struct imap_session *session)
{
    explicit_bzero(session->pass, sizeof(session->pass));
    if (session->state == IMAP_STATE_NOT_AUTHENTICATED) {
        explicit_bzero(session->user, sizeof(session->user));
    }
}

static void
scratch_release(struct imap_session *session)
{
    if (session->scratch != NULL) {
        session->callbacks->scratch_release(session->owner, session->scratch);
        session->scratch = NULL;
    }
}

/* Tell the owner a command was read (callbacks.command_read). */
static void
command_report(struct imap_session *session, enum imap_command command)
{
    ASSERT((unsigned)command < IMAP_CMD_COUNT);
    if (session->callbacks->command_read != NULL) {
        session->callbacks->command_read(session->owner, command);
    }
}

/* The command the reader dropped (too big, unreadable): APPEND when its
 * name was seen to be, else unknown (it was never parsed). */
static enum imap_command
command_dropped(const struct imap_session *session)
{
    return imap_reader_command(&session->reader).is_append ? IMAP_CMD_APPEND : IMAP_CMD_UNKNOWN;
}
