/*
 * proto/managesieve/managesieve_session.c - the ManageSieve conversation
 * (see managesieve_session.h): states, the commands that need no store,
 * and the checks every script command passes before the owner runs it.
 *
 * Replies follow RFC 5804 section 1.3: OK, NO or BYE, an optional
 * response code in parentheses, an optional human string. ManageSieve has
 * no BAD: a malformed command is answered NO, and after error_limit
 * failures the session says BYE.
 */
#include "proto/managesieve/managesieve_session.h"

#include <stdio.h>
#include <string.h>

#include "core/assertions.h"
#include "core/sasl.h"
#include "core/utf8.h"

/* ---- output ------------------------------------------------------------- */

static void
out_bytes(struct managesieve_session *session, const char *bytes, size_t len)
{
    /* Every reply the session writes itself is short and the session reads
     * no input while output is pending beyond a reply or two, so running out
     * here is a bug, not a client's doing. */
    ASSERT(session->out_len + len <= sizeof(session->out));
    memcpy(session->out + session->out_len, bytes, len);
    session->out_len += len;
}

static void
out_cstr(struct managesieve_session *session, const char *text)
{
    out_bytes(session, text, strlen(text));
}

static void
out_string(struct managesieve_session *session, struct span text)
{
    bool ok = managesieve_string_append(session->out, sizeof(session->out), &session->out_len,
                                        text);
    ASSERT(ok);
}

/* "OK"/"NO"/"BYE", an optional (code), an optional "text", CRLF. */
static void
reply(struct managesieve_session *session, const char *status, const char *code,
      const char *text)
{
    out_cstr(session, status);
    if (code != NULL) {
        out_cstr(session, " (");
        out_cstr(session, code);
        out_cstr(session, ")");
    }
    if (text != NULL) {
        out_cstr(session, " ");
        out_string(session, span_make(text, strlen(text)));
    }
    out_cstr(session, "\r\n");
}

static void
bye(struct managesieve_session *session, const char *code, const char *text)
{
    reply(session, "BYE", code, text);
    session->state = MANAGESIEVE_STATE_LOGOUT;
}

/* A failed command: NO, and BYE once the client has failed too often. */
static void
fail(struct managesieve_session *session, const char *code, const char *text)
{
    reply(session, "NO", code, text);
    session->error_count++;
    if (session->error_count >= session->config->error_limit) {
        bye(session, NULL, "Too many invalid commands.");
    }
}

static bool
session_offers_plain(const struct managesieve_session *session)
{
    return session->is_secure || session->config->is_plaintext_auth_allowed;
}

static void
write_capabilities(struct managesieve_session *session)
{
    out_cstr(session, "\"IMPLEMENTATION\" ");
    out_string(session, span_make(session->config->implementation,
                                  strlen(session->config->implementation)));
    out_cstr(session, "\r\n\"SASL\" ");
    out_cstr(session, session->state == MANAGESIEVE_STATE_NOT_AUTHENTICATED &&
                              session_offers_plain(session)
                          ? "\"PLAIN\""
                          : "\"\"");
    out_cstr(session, "\r\n\"SIEVE\" ");
    out_string(session, span_make(session->config->sieve_extensions,
                                  strlen(session->config->sieve_extensions)));
    out_cstr(session, "\r\n");
    if (session->is_tls_offered && !session->is_tls &&
        session->state == MANAGESIEVE_STATE_NOT_AUTHENTICATED) {
        out_cstr(session, "\"STARTTLS\"\r\n");
    }
    if (session->config->max_redirects > 0) {
        char line[64];
        (void)snprintf(line, sizeof(line), "\"MAXREDIRECTS\" \"%u\"\r\n",
                       session->config->max_redirects);
        out_cstr(session, line);
    }
    if (session->state == MANAGESIEVE_STATE_AUTHENTICATED) {
        out_cstr(session, "\"OWNER\" ");
        out_string(session, span_make(session->user, strlen(session->user)));
        out_cstr(session, "\r\n");
    }
    out_cstr(session, "\"UNAUTHENTICATE\"\r\n\"VERSION\" \"1.0\"\r\n");
}

/* ---- strings and names -------------------------------------------------- */

bool
managesieve_string_append(char *out, size_t out_bytes, size_t *out_len, struct span text)
{
    bool is_quotable = text.len <= MANAGESIEVE_QUOTED_BYTES_MAX;
    size_t escapes = 0;
    for (size_t i = 0; i < text.len && is_quotable; i++) {
        char c = text.ptr[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            is_quotable = false;
        } else if (c == '"' || c == '\\') {
            escapes++;
        }
    }
    size_t at = *out_len;
    if (is_quotable) {
        if (at + text.len + escapes + 2 > out_bytes) {
            return false;
        }
        out[at++] = '"';
        for (size_t i = 0; i < text.len; i++) {
            if (text.ptr[i] == '"' || text.ptr[i] == '\\') {
                out[at++] = '\\';
            }
            out[at++] = text.ptr[i];
        }
        out[at++] = '"';
    } else {
        char header[32];
        int n = snprintf(header, sizeof(header), "{%zu}\r\n", text.len);
        ASSERT(n > 0 && (size_t)n < sizeof(header));
        if (at + (size_t)n + text.len > out_bytes) {
            return false;
        }
        memcpy(out + at, header, (size_t)n);
        at += (size_t)n;
        memcpy(out + at, text.ptr, text.len);
        at += text.len;
    }
    *out_len = at;
    return true;
}

bool
managesieve_script_name_is_valid(struct span name)
{
    if (name.len == 0 || name.len > MANAGESIEVE_SCRIPT_NAME_BYTES_MAX || name.ptr[0] == '.') {
        return false;
    }
    const unsigned char *u = (const unsigned char *)name.ptr;
    size_t at = 0;
    while (at < name.len) {
        uint32_t cp;
        size_t n = utf8_decode_strict(u + at, name.len - at, &cp);
        if (n == 0) {
            return false;
        }
        if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
            cp == '/') {
            return false;
        }
        at += n;
    }
    return true;
}

/* ---- commands ----------------------------------------------------------- */

static bool
arg_is_string(const struct managesieve_command *command, uint32_t index)
{
    return index < command->arg_count &&
           command->args[index].kind == MANAGESIEVE_ARG_STRING;
}

static void
request(struct managesieve_session *session, enum managesieve_request what)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_NONE);
    session->request = what;
    session->is_request_taken = false;
}

/* PLAIN's response decoded: ask the owner to check it. */
static void
auth_plain_response(struct managesieve_session *session, struct span b64)
{
    if (b64.len == 1 && b64.ptr[0] == '*') {
        fail(session, NULL, "Authentication cancelled.");
        return;
    }
    if (!sasl_plain_decode(b64, session->user, sizeof(session->user), session->pass,
                           sizeof(session->pass))) {
        fail(session, NULL, "Invalid SASL PLAIN response.");
        return;
    }
    request(session, MANAGESIEVE_REQUEST_AUTH);
}

static void
command_authenticate(struct managesieve_session *session,
                     const struct managesieve_command *command)
{
    if (session->state != MANAGESIEVE_STATE_NOT_AUTHENTICATED) {
        fail(session, NULL, "Already authenticated.");
        return;
    }
    if (!arg_is_string(command, 0) || command->arg_count > 2 ||
        (command->arg_count == 2 && !arg_is_string(command, 1))) {
        fail(session, NULL, "Syntax: AUTHENTICATE \"PLAIN\" [\"initial response\"]");
        return;
    }
    if (!span_equals_nocase(command->args[0].bytes, "PLAIN")) {
        fail(session, NULL, "Unsupported SASL mechanism.");
        return;
    }
    if (!session_offers_plain(session)) {
        fail(session, "ENCRYPT-NEEDED", "Plaintext authentication disallowed without TLS.");
        return;
    }
    if (command->arg_count == 2) {
        auth_plain_response(session, command->args[1].bytes);
        return;
    }
    out_cstr(session, "\"\"\r\n"); /* PLAIN's empty challenge */
    session->is_sasl_wait = true;
}

static void
command_starttls(struct managesieve_session *session, const struct managesieve_command *command)
{
    if (command->arg_count != 0) {
        fail(session, NULL, "Syntax: STARTTLS");
    } else if (session->is_tls) {
        fail(session, NULL, "TLS is already active.");
    } else if (!session->is_tls_offered) {
        fail(session, NULL, "TLS is not available here.");
    } else if (session->state != MANAGESIEVE_STATE_NOT_AUTHENTICATED) {
        fail(session, NULL, "STARTTLS only before authentication.");
    } else {
        reply(session, "OK", NULL, "Begin TLS negotiation now.");
        request(session, MANAGESIEVE_REQUEST_STARTTLS);
    }
}

static void
command_noop(struct managesieve_session *session, const struct managesieve_command *command)
{
    if (command->arg_count > 1 || (command->arg_count == 1 && !arg_is_string(command, 0))) {
        fail(session, NULL, "Syntax: NOOP [\"tag\"]");
        return;
    }
    if (command->arg_count == 0) {
        reply(session, "OK", NULL, "NOOP completed.");
        return;
    }
    struct span tag = command->args[0].bytes;
    char code[MANAGESIEVE_QUOTED_BYTES_MAX + 16];
    size_t code_len = 0;
    memcpy(code, "TAG ", 4);
    code_len = 4;
    if (!managesieve_string_append(code, sizeof(code) - 1, &code_len, tag)) {
        fail(session, NULL, "Tag too long.");
        return;
    }
    code[code_len] = '\0';
    reply(session, "OK", code, "Done");
}

/* Check a script command's state and arguments; hand it to the owner. */
static void
command_script(struct managesieve_session *session, const struct managesieve_command *command,
               enum managesieve_script_op op)
{
    static const uint32_t arg_count[] = {
        [MANAGESIEVE_OP_PUTSCRIPT] = 2,    [MANAGESIEVE_OP_LISTSCRIPTS] = 0,
        [MANAGESIEVE_OP_SETACTIVE] = 1,    [MANAGESIEVE_OP_GETSCRIPT] = 1,
        [MANAGESIEVE_OP_DELETESCRIPT] = 1, [MANAGESIEVE_OP_RENAMESCRIPT] = 2,
        [MANAGESIEVE_OP_CHECKSCRIPT] = 1,  [MANAGESIEVE_OP_HAVESPACE] = 2,
    };
    if (session->state != MANAGESIEVE_STATE_AUTHENTICATED) {
        fail(session, NULL, "Authenticate first.");
        return;
    }
    struct managesieve_script_request *script = &session->script;
    memset(script, 0, sizeof(*script));
    script->op = op;
    bool is_ok = command->arg_count == arg_count[op];
    for (uint32_t i = 0; is_ok && i < command->arg_count; i++) {
        bool is_number_arg = op == MANAGESIEVE_OP_HAVESPACE && i == 1;
        is_ok = is_number_arg ? managesieve_arg_number(&command->args[i], &script->size)
                              : arg_is_string(command, i);
    }
    if (!is_ok) {
        fail(session, NULL, "Wrong arguments for this command.");
        return;
    }
    /* Big literals belong to script bodies only. */
    uint32_t script_arg = op == MANAGESIEVE_OP_PUTSCRIPT ? 1 : op == MANAGESIEVE_OP_CHECKSCRIPT ? 0 : UINT32_MAX;
    for (uint32_t i = 0; i < command->arg_count; i++) {
        if (i != script_arg && command->big_buffer != NULL &&
            command->args[i].bytes.ptr == command->big_buffer) {
            fail(session, NULL, "Argument too long.");
            return;
        }
    }
    switch (op) {
    case MANAGESIEVE_OP_PUTSCRIPT:
        script->name = command->args[0].bytes;
        script->script = command->args[1].bytes;
        break;
    case MANAGESIEVE_OP_CHECKSCRIPT:
        script->script = command->args[0].bytes;
        break;
    case MANAGESIEVE_OP_RENAMESCRIPT:
        script->name = command->args[0].bytes;
        script->new_name = command->args[1].bytes;
        break;
    case MANAGESIEVE_OP_SETACTIVE:
    case MANAGESIEVE_OP_GETSCRIPT:
    case MANAGESIEVE_OP_DELETESCRIPT:
    case MANAGESIEVE_OP_HAVESPACE:
        script->name = command->args[0].bytes;
        break;
    case MANAGESIEVE_OP_LISTSCRIPTS:
        break;
    }
    bool is_name_needed = op != MANAGESIEVE_OP_LISTSCRIPTS && op != MANAGESIEVE_OP_CHECKSCRIPT &&
                          !(op == MANAGESIEVE_OP_SETACTIVE && script->name.len == 0);
    if (is_name_needed && !managesieve_script_name_is_valid(script->name)) {
        fail(session, NULL, "Invalid script name.");
        return;
    }
    if (op == MANAGESIEVE_OP_RENAMESCRIPT && !managesieve_script_name_is_valid(script->new_name)) {
        fail(session, NULL, "Invalid new script name.");
        return;
    }
    request(session, MANAGESIEVE_REQUEST_SCRIPT);
}

static void
command_run(struct managesieve_session *session, const struct managesieve_command *command)
{
    static const struct {
        const char *name;
        enum managesieve_script_op op;
    } script_commands[] = {
        { "PUTSCRIPT", MANAGESIEVE_OP_PUTSCRIPT },
        { "LISTSCRIPTS", MANAGESIEVE_OP_LISTSCRIPTS },
        { "SETACTIVE", MANAGESIEVE_OP_SETACTIVE },
        { "GETSCRIPT", MANAGESIEVE_OP_GETSCRIPT },
        { "DELETESCRIPT", MANAGESIEVE_OP_DELETESCRIPT },
        { "RENAMESCRIPT", MANAGESIEVE_OP_RENAMESCRIPT },
        { "CHECKSCRIPT", MANAGESIEVE_OP_CHECKSCRIPT },
        { "HAVESPACE", MANAGESIEVE_OP_HAVESPACE },
    };
    struct span name = command->name;
    if (span_equals_nocase(name, "CAPABILITY")) {
        if (command->arg_count != 0) {
            fail(session, NULL, "Syntax: CAPABILITY");
            return;
        }
        write_capabilities(session);
        reply(session, "OK", NULL, "Capability completed.");
    } else if (span_equals_nocase(name, "AUTHENTICATE")) {
        command_authenticate(session, command);
    } else if (span_equals_nocase(name, "STARTTLS")) {
        command_starttls(session, command);
    } else if (span_equals_nocase(name, "NOOP")) {
        command_noop(session, command);
    } else if (span_equals_nocase(name, "LOGOUT")) {
        reply(session, "OK", NULL, "Logout completed.");
        session->state = MANAGESIEVE_STATE_LOGOUT;
    } else if (span_equals_nocase(name, "UNAUTHENTICATE")) {
        if (session->state != MANAGESIEVE_STATE_AUTHENTICATED || command->arg_count != 0) {
            fail(session, NULL, "Not authenticated.");
            return;
        }
        session->state = MANAGESIEVE_STATE_NOT_AUTHENTICATED;
        explicit_bzero(session->user, sizeof(session->user));
        reply(session, "OK", NULL, "Unauthenticate completed.");
    } else {
        for (size_t i = 0; i < sizeof(script_commands) / sizeof(script_commands[0]); i++) {
            if (span_equals_nocase(name, script_commands[i].name)) {
                command_script(session, command, script_commands[i].op);
                return;
            }
        }
        fail(session, NULL, "Unknown command.");
    }
}

static void
read_error(struct managesieve_session *session, enum managesieve_read_error error)
{
    switch (error) {
    case MANAGESIEVE_ERROR_LITERAL_TOO_BIG:
        fail(session, "QUOTA/MAXSIZE", "Script too large.");
        break;
    case MANAGESIEVE_ERROR_NO_MEMORY:
        fail(session, "TRYLATER", "Server busy, try again later.");
        break;
    case MANAGESIEVE_ERROR_LINE_TOO_LONG:
        fail(session, NULL, "Command line too long.");
        break;
    case MANAGESIEVE_ERROR_TOO_MANY_ARGS:
        fail(session, NULL, "Too many arguments.");
        break;
    case MANAGESIEVE_ERROR_SYNTAX:
    case MANAGESIEVE_ERROR_NONE:
        fail(session, NULL, "Syntax error.");
        break;
    }
}

/* ---- the public side ---------------------------------------------------- */

void
managesieve_session_init(struct managesieve_session *session,
                         const struct managesieve_session_config *config, bool is_secure,
                         bool is_tls_offered, bool is_tls)
{
    ASSERT(config->error_limit > 0);
    memset(session, 0, sizeof(*session));
    session->config = config;
    session->is_secure = is_secure || is_tls;
    session->is_tls = is_tls;
    session->is_tls_offered = is_tls_offered && !is_tls;
    managesieve_reader_init(&session->reader, &config->reader);
    write_capabilities(session);
    reply(session, "OK", NULL, "toaster ManageSieve ready.");
}

bool
managesieve_session_wants_input(const struct managesieve_session *session)
{
    /* Between commands, wait until earlier replies are sent, so a client
     * that never reads cannot make us queue without bound. */
    return session->state != MANAGESIEVE_STATE_LOGOUT &&
           session->request == MANAGESIEVE_REQUEST_NONE &&
           session->out_len <= sizeof(session->out) / 2;
}

size_t
managesieve_session_feed(struct managesieve_session *session, const char *in, size_t len)
{
    size_t used = 0;
    while (used < len && managesieve_session_wants_input(session)) {
        size_t n = 0;
        enum managesieve_read_status status =
            managesieve_reader_feed(&session->reader, in + used, len - used, &n);
        used += n;
        if (status == MANAGESIEVE_READ_MORE) {
            continue;
        }
        if (status == MANAGESIEVE_READ_FATAL) {
            bye(session, NULL, "Literal too large.");
            break;
        }
        bool was_sasl_wait = session->is_sasl_wait;
        session->is_sasl_wait = false;
        if (status == MANAGESIEVE_READ_ERROR) {
            read_error(session, managesieve_reader_error(&session->reader));
        } else {
            const struct managesieve_command *command = managesieve_reader_command(&session->reader);
            if (was_sasl_wait) {
                if (command->arg_count == 1 && command->args[0].bytes.ptr != command->big_buffer) {
                    auth_plain_response(session, command->args[0].bytes);
                } else {
                    fail(session, NULL, "Invalid SASL response.");
                }
            } else {
                command_run(session, command);
            }
        }
        /* A script request keeps its command (and big buffer) until done. */
        if (session->request != MANAGESIEVE_REQUEST_SCRIPT) {
            managesieve_reader_next(&session->reader);
            if (session->is_sasl_wait) {
                managesieve_reader_expect_string_line(&session->reader);
            }
        }
        if (session->request == MANAGESIEVE_REQUEST_STARTTLS) {
            break; /* nothing after STARTTLS is read in plaintext */
        }
    }
    return used;
}

bool
managesieve_session_is_closing(const struct managesieve_session *session)
{
    return session->state == MANAGESIEVE_STATE_LOGOUT;
}

bool
managesieve_session_is_mid_command(const struct managesieve_session *session)
{
    return session->request != MANAGESIEVE_REQUEST_NONE || session->is_sasl_wait ||
           !managesieve_reader_is_idle(&session->reader);
}

enum managesieve_state
managesieve_session_state(const struct managesieve_session *session)
{
    return session->state;
}

enum managesieve_request
managesieve_session_take_request(struct managesieve_session *session)
{
    if (session->request == MANAGESIEVE_REQUEST_NONE || session->is_request_taken) {
        return MANAGESIEVE_REQUEST_NONE;
    }
    session->is_request_taken = true;
    return session->request;
}

const char *
managesieve_session_auth_user(const struct managesieve_session *session)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_AUTH);
    return session->user;
}

const char *
managesieve_session_auth_password(const struct managesieve_session *session)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_AUTH);
    return session->pass;
}

void
managesieve_session_auth_done(struct managesieve_session *session, bool ok,
                              const char *canonical_user)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_AUTH);
    explicit_bzero(session->pass, sizeof(session->pass));
    session->request = MANAGESIEVE_REQUEST_NONE;
    session->is_request_taken = false;
    if (session->state == MANAGESIEVE_STATE_LOGOUT) {
        return; /* timed out or shut down meanwhile */
    }
    if (!ok) {
        explicit_bzero(session->user, sizeof(session->user));
        fail(session, NULL, "Authentication failed.");
        return;
    }
    if (canonical_user != NULL) {
        size_t n = strnlen(canonical_user, sizeof(session->user));
        ASSERT(n < sizeof(session->user));
        memcpy(session->user, canonical_user, n + 1);
    }
    session->state = MANAGESIEVE_STATE_AUTHENTICATED;
    reply(session, "OK", NULL, "Logged in.");
}

void
managesieve_session_tls_started(struct managesieve_session *session)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_STARTTLS);
    session->request = MANAGESIEVE_REQUEST_NONE;
    session->is_request_taken = false;
    session->is_tls = true;
    session->is_secure = true;
    if (session->state == MANAGESIEVE_STATE_LOGOUT) {
        return;
    }
    write_capabilities(session);
    reply(session, "OK", NULL, "TLS negotiation successful.");
}

const struct managesieve_script_request *
managesieve_session_script(const struct managesieve_session *session)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_SCRIPT);
    return &session->script;
}

void
managesieve_session_script_done(struct managesieve_session *session, bool is_failure)
{
    ASSERT(session->request == MANAGESIEVE_REQUEST_SCRIPT);
    session->request = MANAGESIEVE_REQUEST_NONE;
    session->is_request_taken = false;
    memset(&session->script, 0, sizeof(session->script));
    managesieve_reader_next(&session->reader);
    if (is_failure && session->state != MANAGESIEVE_STATE_LOGOUT) {
        session->error_count++;
        if (session->error_count >= session->config->error_limit) {
            bye(session, NULL, "Too many invalid commands.");
        }
    }
}

void
managesieve_session_shutdown(struct managesieve_session *session)
{
    if (session->state != MANAGESIEVE_STATE_LOGOUT) {
        bye(session, "TRYLATER", "Server shutting down.");
    }
}

void
managesieve_session_timeout(struct managesieve_session *session)
{
    if (session->state != MANAGESIEVE_STATE_LOGOUT) {
        bye(session, NULL, "Disconnected for inactivity.");
    }
}

const char *
managesieve_session_user(const struct managesieve_session *session)
{
    return session->state == MANAGESIEVE_STATE_AUTHENTICATED ? session->user : "";
}

struct span
managesieve_session_output(const struct managesieve_session *session)
{
    return span_make(session->out, session->out_len);
}

void
managesieve_session_output_sent(struct managesieve_session *session, size_t bytes)
{
    ASSERT(bytes <= session->out_len);
    memmove(session->out, session->out + bytes, session->out_len - bytes);
    session->out_len -= bytes;
}

void
managesieve_session_finish(struct managesieve_session *session)
{
    managesieve_reader_finish(&session->reader);
    explicit_bzero(session->pass, sizeof(session->pass));
}
