/*
 * proto/smtp/smtp_client.c - the SMTP client state machine for outbound
 * delivery: commands out, replies in, events for the delivery agent.
 *
 * Owns the reply parser, the output buffer (SMTP_CLIENT_OUT_BYTES) and the
 * bookkeeping of one transaction; borrows the caller's message and
 * recipients until MESSAGE_DONE. Never touches a socket, a timer or the
 * heap; runs on the reactor thread that owns the connection.
 *
 * Every reply goes through client_on_reply(), which dispatches on the
 * state; every state change goes through client_enter(). In the MAIL state
 * the next reply belongs to the oldest command without one, in the order
 * they were written: MAIL, the RCPTs, DATA (RFC 2920 section 3.1 keeps the
 * order). A reply with no command waiting for it is a protocol error.
 * Commands of a pipelined group are written as output room allows
 * (client_fill), so 10,000 recipients need no more than SMTP_CLIENT_OUT_BYTES.
 */
#include "proto/smtp/smtp_client.h"

#include <errno.h>
#include <assert.h>
#include <string.h>

#include "core/assertions.h"

/* Output room a pipelined group leaves free, so the few short commands a
 * reply can call for (RSET, QUIT, ".", "*") fit even when the caller has
 * not yet reported the group sent. */
#define CLIENT_RESERVE_BYTES 64

#define CLIENT_QUEUE_MAX                                                                           \
    (sizeof(((struct smtp_client *)0)->queued) / sizeof(struct smtp_client_event))

static_assert(SMTP_CLIENT_HELO_BYTES_MAX + 8 < SMTP_CLIENT_COMMAND_BYTES_MAX, "EHLO fits");
static_assert(SMTP_ADDRESS_BYTES_MAX + SMTP_CLIENT_ORCPT_BYTES_MAX + 64 <
                  SMTP_CLIENT_COMMAND_BYTES_MAX,
              "the longest RCPT fits");
static_assert(SMTP_ADDRESS_BYTES_MAX + SMTP_CLIENT_ENVID_BYTES_MAX + 96 <
                  SMTP_CLIENT_COMMAND_BYTES_MAX,
              "the longest MAIL fits");
static_assert(13 + (2 + 2 * SMTP_CLIENT_AUTH_BYTES_MAX + 2) / 3 * 4 < SMTP_CLIENT_COMMAND_BYTES_MAX,
              "the longest AUTH PLAIN fits");

/* A command being built; is_over when it would not fit. */
struct client_cmd {
    char buf[SMTP_CLIENT_COMMAND_BYTES_MAX];
    size_t len;
    bool is_over;
};

static void client_enter(struct smtp_client *client, enum smtp_client_state next);
static bool client_on_reply(struct smtp_client *client, const struct smtp_client_reply *reply);
static void client_on_ehlo_line(struct smtp_client *client, struct span line);
static void client_on_txn_reply(struct smtp_client *client, const struct smtp_client_reply *reply);
static void client_fill(struct smtp_client *client);
static void client_push(struct smtp_client *client, const struct smtp_client_event *event);
static void client_push_kind(struct smtp_client *client, enum smtp_client_event_kind kind);
static void client_push_error(struct smtp_client *client, enum smtp_client_error error,
                              enum smtp_client_reply_error reply_error);
static void client_done(struct smtp_client *client, enum smtp_client_result result,
                        enum smtp_client_stage stage, const struct smtp_client_reply *reply,
                        bool then_rset);
static void client_closing(struct smtp_client *client, const struct smtp_client_reply *reply,
                           enum smtp_client_stage stage);
static void client_session_failed(struct smtp_client *client,
                                  const struct smtp_client_reply *reply);
static void client_save(struct smtp_client *client, const struct smtp_client_reply *reply,
                        enum smtp_client_stage stage);
static bool client_write_simple(struct smtp_client *client, const char *line);
static bool client_write(struct smtp_client *client, const struct client_cmd *cmd,
                         size_t reserve_bytes);
static void client_write_must(struct smtp_client *client, const struct client_cmd *cmd);
static void client_build_ehlo(const struct smtp_client *client, struct client_cmd *cmd,
                              const char *verb);
static void client_build_mail(const struct smtp_client *client,
                              const struct smtp_client_message *msg, struct client_cmd *cmd);
static void client_build_rcpt(const struct smtp_client *client, const struct smtp_client_rcpt *rcpt,
                              struct client_cmd *cmd);
static void cmd_add(struct client_cmd *cmd, const char *p, size_t n);
static void cmd_add_str(struct client_cmd *cmd, const char *s);
static void cmd_add_u64(struct client_cmd *cmd, uint64_t v);
static enum smtp_client_result result_of(uint16_t code);
static bool text_is_command_safe(struct span s);
static bool text_is_8bit(struct span s);
static bool xtext_is_valid(struct span s);
static uint64_t parse_u64(struct span s, bool *ok_out);

int
smtp_client_init(struct smtp_client *client, const struct smtp_client_params *params)
{
    ASSERT(client != NULL && params != NULL);
    memset(client, 0, sizeof(*client));
    smtp_client_reply_init(&client->parser);
    struct span name = params->helo_name;
    bool is_printable = true;
    for (size_t i = 0; i < name.len; i++) {
        is_printable = is_printable && name.ptr[i] > ' ' && name.ptr[i] < 0x7f;
    }
    if (name.len == 0 || name.len > SMTP_CLIENT_HELO_BYTES_MAX || !is_printable) {
        client->state = SMTP_CLIENT_STATE_FAILED;
        return -EINVAL;
    }
    memcpy(client->helo_name, name.ptr, name.len);
    client->helo_len = name.len;
    client->state = SMTP_CLIENT_STATE_GREETING;
    return 0;
}

enum smtp_client_status
smtp_client_feed(struct smtp_client *client, const uint8_t *in, size_t in_len, size_t *in_used,
                 struct smtp_client_event *event_out)
{
    ASSERT(client != NULL && in_used != NULL && event_out != NULL);
    ASSERT(in != NULL || in_len == 0);
    *in_used = 0;
    if (client->queued_count > 0) {
        *event_out = client->queued[0];
        client->queued_count--;
        memmove(&client->queued[0], &client->queued[1],
                client->queued_count * sizeof(client->queued[0]));
        return SMTP_CLIENT_EVENT;
    }
    if (client->state == SMTP_CLIENT_STATE_CLOSED || client->state == SMTP_CLIENT_STATE_FAILED) {
        *in_used = in_len;
        return SMTP_CLIENT_NEED_MORE;
    }
    if (client->state == SMTP_CLIENT_STATE_TLS_HANDSHAKE && in_len > 0) {
        /* RFC 3207 section 6 and CVE-2011-0411: bytes the server sent after
         * its 220 travelled in clear and must not be read as TLS-protected
         * replies. */
        *in_used = in_len;
        client_push_error(client, SMTP_CLIENT_ERR_TLS_INJECTION, SMTP_CLIENT_REPLY_OK);
    }
    /* Each round either uses input bytes or stops, so the loop is bounded
     * by in_len + 1 rounds. */
    size_t used = *in_used;
    while (client->queued_count == 0 && used < in_len) {
        size_t n = 0;
        enum smtp_client_reply_status st =
            smtp_client_reply_feed(&client->parser, in + used, in_len - used, &n);
        used += n;
        if (st == SMTP_CLIENT_REPLY_ERROR) {
            used = in_len;
            client_push_error(client, SMTP_CLIENT_ERR_REPLY, client->parser.error);
            break;
        }
        if (st == SMTP_CLIENT_REPLY_NEED_MORE) {
            ASSERT(used == in_len);
            break;
        }
        ASSERT(n > 0);
        if (client->state == SMTP_CLIENT_STATE_EHLO && client->parser.line_index > 0 &&
            client->parser.reply.code / 100 == 2) {
            client_on_ehlo_line(client, client->parser.line_text);
        }
        if (client->parser.is_last) {
            struct smtp_client_reply reply = client->parser.reply;
            (void)client_on_reply(client, &reply);
        }
    }
    if (client->state == SMTP_CLIENT_STATE_TLS_HANDSHAKE && used < in_len) {
        /* The server sent more right behind its 220 to STARTTLS: plaintext
         * that would be read as if it came over TLS (CVE-2011-0411). No
         * TLS_GO then; the session is over. */
        ASSERT(client->queued_count == 1);
        ASSERT(client->queued[0].kind == SMTP_CLIENT_EV_TLS_GO);
        client->queued_count = 0;
        used = in_len;
        client_push_error(client, SMTP_CLIENT_ERR_TLS_INJECTION, SMTP_CLIENT_REPLY_OK);
    }
    *in_used = used;
    if (client->queued_count == 0) {
        return SMTP_CLIENT_NEED_MORE;
    }
    *event_out = client->queued[0];
    client->queued_count--;
    memmove(&client->queued[0], &client->queued[1],
            client->queued_count * sizeof(client->queued[0]));
    return SMTP_CLIENT_EVENT;
}

struct span
smtp_client_output(const struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->out_start <= client->out_end);
    return span_make((const char *)client->out + client->out_start,
                     client->out_end - client->out_start);
}

void
smtp_client_output_consumed(struct smtp_client *client, size_t sent_bytes)
{
    ASSERT(client != NULL);
    ASSERT(sent_bytes <= client->out_end - client->out_start);
    explicit_bzero(client->out + client->out_start, sent_bytes);
    client->out_start += sent_bytes;
    if (client->out_start == client->out_end) {
        client->out_start = 0;
        client->out_end = 0;
    }
    client_fill(client);
}

enum smtp_client_state
smtp_client_state(const struct smtp_client *client)
{
    ASSERT(client != NULL);
    return client->state;
}

const char *
smtp_client_state_name(enum smtp_client_state state)
{
    switch (state) {
    case SMTP_CLIENT_STATE_GREETING:
        return "greeting";
    case SMTP_CLIENT_STATE_EHLO:
        return "ehlo";
    case SMTP_CLIENT_STATE_HELO:
        return "helo";
    case SMTP_CLIENT_STATE_READY:
        return "ready";
    case SMTP_CLIENT_STATE_STARTTLS:
        return "starttls";
    case SMTP_CLIENT_STATE_TLS_HANDSHAKE:
        return "tls-handshake";
    case SMTP_CLIENT_STATE_AUTH:
        return "auth";
    case SMTP_CLIENT_STATE_MAIL:
        return "mail";
    case SMTP_CLIENT_STATE_BODY:
        return "body";
    case SMTP_CLIENT_STATE_BDAT:
        return "bdat";
    case SMTP_CLIENT_STATE_DATA_END:
        return "data-end";
    case SMTP_CLIENT_STATE_RSET:
        return "rset";
    case SMTP_CLIENT_STATE_QUIT:
        return "quit";
    case SMTP_CLIENT_STATE_CLOSED:
        return "closed";
    case SMTP_CLIENT_STATE_FAILED:
        return "failed";
    }
    return "?";
}

uint32_t
smtp_client_timeout_ms(const struct smtp_client *client)
{
    ASSERT(client != NULL);
    switch (client->state) {
    case SMTP_CLIENT_STATE_GREETING:
        return SMTP_CLIENT_TIMEOUT_GREETING_MS;
    case SMTP_CLIENT_STATE_MAIL:
        if (client->is_data_sent && client->is_mail_replied &&
            client->rcpt_replied_count == client->rcpt_sent_count) {
            return SMTP_CLIENT_TIMEOUT_DATA_INIT_MS;
        }
        return SMTP_CLIENT_TIMEOUT_COMMAND_MS;
    case SMTP_CLIENT_STATE_BODY:
        return SMTP_CLIENT_TIMEOUT_DATA_BLOCK_MS;
    case SMTP_CLIENT_STATE_BDAT:
    case SMTP_CLIENT_STATE_DATA_END:
        return SMTP_CLIENT_TIMEOUT_DATA_END_MS;
    case SMTP_CLIENT_STATE_EHLO:
    case SMTP_CLIENT_STATE_HELO:
    case SMTP_CLIENT_STATE_STARTTLS:
    case SMTP_CLIENT_STATE_TLS_HANDSHAKE:
    case SMTP_CLIENT_STATE_AUTH:
    case SMTP_CLIENT_STATE_RSET:
    case SMTP_CLIENT_STATE_QUIT:
        return SMTP_CLIENT_TIMEOUT_COMMAND_MS;
    case SMTP_CLIENT_STATE_READY:
    case SMTP_CLIENT_STATE_CLOSED:
    case SMTP_CLIENT_STATE_FAILED:
        return 0;
    }
    return 0;
}

const struct smtp_client_caps *
smtp_client_caps(const struct smtp_client *client)
{
    ASSERT(client != NULL);
    return &client->caps;
}

int
smtp_client_starttls(struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_READY);
    if (client->is_tls) {
        return -EALREADY;
    }
    if (!client->caps.has_starttls) {
        return -ENOTSUP;
    }
    bool is_written = client_write_simple(client, "STARTTLS\r\n");
    ASSERT(is_written); /* READY: every command was answered */
    client_enter(client, SMTP_CLIENT_STATE_STARTTLS);
    return 0;
}

void
smtp_client_tls_started(struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_TLS_HANDSHAKE);
    ASSERT(!smtp_client_reply_is_pending(&client->parser));
    /* RFC 3207 section 4.2: forget everything learnt in clear. */
    memset(&client->caps, 0, sizeof(client->caps));
    client->is_tls = true;
    struct client_cmd cmd;
    client_build_ehlo(client, &cmd, "EHLO ");
    client_write_must(client, &cmd);
    client_enter(client, SMTP_CLIENT_STATE_EHLO);
}

int
smtp_client_auth_plain(struct smtp_client *client, struct span user, struct span password)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_READY);
    if (!client->is_tls) {
        return -EPERM;
    }
    if ((client->caps.auth_mechs & SMTP_CLIENT_AUTH_PLAIN) == 0) {
        return -ENOTSUP;
    }
    if (user.len == 0 || user.len > SMTP_CLIENT_AUTH_BYTES_MAX || password.len == 0 ||
        password.len > SMTP_CLIENT_AUTH_BYTES_MAX || memchr(user.ptr, '\0', user.len) != NULL ||
        memchr(password.ptr, '\0', password.len) != NULL) {
        return -EINVAL;
    }
    /* RFC 4616: [authzid] NUL authcid NUL passwd. */
    uint8_t raw[2 + 2 * SMTP_CLIENT_AUTH_BYTES_MAX];
    size_t raw_len = 0;
    raw[raw_len++] = 0;
    memcpy(raw + raw_len, user.ptr, user.len);
    raw_len += user.len;
    raw[raw_len++] = 0;
    memcpy(raw + raw_len, password.ptr, password.len);
    raw_len += password.len;
    struct client_cmd cmd;
    cmd.len = 0;
    cmd.is_over = false;
    cmd_add_str(&cmd, "AUTH PLAIN ");
    for (size_t i = 0; i < raw_len; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16;
        size_t left = raw_len - i;
        if (left > 1) {
            v |= (uint32_t)raw[i + 1] << 8;
        }
        if (left > 2) {
            v |= raw[i + 2];
        }
        char quad[4] = {digits[(v >> 18) & 63], digits[(v >> 12) & 63],
                        left > 1 ? digits[(v >> 6) & 63] : '=', left > 2 ? digits[v & 63] : '='};
        cmd_add(&cmd, quad, 4);
    }
    cmd_add_str(&cmd, "\r\n");
    ASSERT(!cmd.is_over);
    bool is_written = client_write(client, &cmd, 0);
    explicit_bzero(raw, sizeof(raw));
    explicit_bzero(&cmd, sizeof(cmd));
    ASSERT(is_written);
    client->is_auth_cancelled = false;
    client_enter(client, SMTP_CLIENT_STATE_AUTH);
    return 0;
}

int
smtp_client_start_message(struct smtp_client *client, const struct smtp_client_message *message)
{
    ASSERT(client != NULL && message != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_READY);
    ASSERT(!client->has_message);
    const struct smtp_client_message *m = message;
    if (m->rcpt_count == 0 || m->rcpt_count > SMTP_RCPT_CEILING || m->rcpts == NULL) {
        return -EINVAL;
    }
    if (m->mail_from.len > SMTP_ADDRESS_BYTES_MAX || !text_is_command_safe(m->mail_from) ||
        m->envid.len > SMTP_CLIENT_ENVID_BYTES_MAX || !xtext_is_valid(m->envid)) {
        return -EINVAL;
    }
    if (m->ret != SMTP_CLIENT_RET_NONE && m->ret != SMTP_CLIENT_RET_FULL &&
        m->ret != SMTP_CLIENT_RET_HDRS) {
        return -EINVAL;
    }
    for (size_t i = 0; i < m->rcpt_count; i++) {
        const struct smtp_client_rcpt *r = &m->rcpts[i];
        if (r->address.len == 0 || r->address.len > SMTP_ADDRESS_BYTES_MAX ||
            !text_is_command_safe(r->address) || r->orcpt.len > SMTP_CLIENT_ORCPT_BYTES_MAX ||
            !xtext_is_valid(r->orcpt) ||
            (r->orcpt.len > 0 && memchr(r->orcpt.ptr, ';', r->orcpt.len) == NULL)) {
            return -EINVAL;
        }
        uint32_t all = SMTP_CLIENT_NOTIFY_NEVER | SMTP_CLIENT_NOTIFY_SUCCESS |
                       SMTP_CLIENT_NOTIFY_FAILURE | SMTP_CLIENT_NOTIFY_DELAY;
        if ((r->notify & ~all) != 0 || ((r->notify & SMTP_CLIENT_NOTIFY_NEVER) != 0 &&
                                        r->notify != SMTP_CLIENT_NOTIFY_NEVER)) {
            return -EINVAL;
        }
    }
    /* RFC 6531 section 3.2: a UTF-8 address needs SMTPUTF8, whatever the
     * caller said. */
    bool needs_smtputf8 = m->needs_smtputf8 || text_is_8bit(m->mail_from);
    for (size_t i = 0; i < m->rcpt_count && !needs_smtputf8; i++) {
        needs_smtputf8 = text_is_8bit(m->rcpts[i].address);
    }
    if (m->needs_8bitmime && !client->caps.has_8bitmime) {
        return -EPROTONOSUPPORT;
    }
    if (needs_smtputf8 && !client->caps.has_smtputf8) {
        return -EILSEQ;
    }
    if (client->caps.has_size && client->caps.size_max_bytes > 0 &&
        m->size_bytes > client->caps.size_max_bytes) {
        return -EMSGSIZE;
    }
    client->msg = *m;
    client->msg.needs_smtputf8 = needs_smtputf8;
    client->has_message = true;
    client->is_pipelined = client->caps.has_pipelining;
    client->is_bdat = m->use_chunking && client->caps.has_chunking;
    client->is_mail_sent = false;
    client->is_mail_replied = false;
    client->is_mail_ok = false;
    client->rcpt_sent_count = 0;
    client->rcpt_replied_count = 0;
    client->rcpt_ok_count = 0;
    client->rcpt_fail_count = 0;
    client->is_data_sent = false;
    client->is_data_discard = false;
    client->is_body_sent = false;
    client->is_bdat_last = false;
    client_enter(client, SMTP_CLIENT_STATE_MAIL);
    client_fill(client);
    ASSERT(client->is_mail_sent);
    return 0;
}

const char *
smtp_client_local_reply(int start_error)
{
    switch (start_error) {
    case -EMSGSIZE:
        return "552 5.3.4 message size exceeds fixed maximum message size of the remote server";
    case -EPROTONOSUPPORT:
        return "554 5.6.3 message needs 8BITMIME, remote server does not offer it (no conversion)";
    case -EILSEQ:
        return "553 5.6.7 message needs SMTPUTF8, remote server does not offer it";
    default:
        return NULL;
    }
}

void
smtp_client_body_sent(struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_BODY);
    ASSERT(!client->is_bdat);
    client->is_body_sent = true;
    client_enter(client, SMTP_CLIENT_STATE_DATA_END);
}

void
smtp_client_bdat(struct smtp_client *client, uint64_t chunk_bytes, bool is_last)
{
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_BODY);
    ASSERT(client->is_bdat);
    struct client_cmd cmd;
    cmd.len = 0;
    cmd.is_over = false;
    cmd_add_str(&cmd, "BDAT ");
    cmd_add_u64(&cmd, chunk_bytes);
    cmd_add_str(&cmd, is_last ? " LAST\r\n" : "\r\n");
    client_write_must(client, &cmd);
    client->is_bdat_last = is_last;
    client->is_body_sent = is_last;
    client_enter(client, SMTP_CLIENT_STATE_BDAT);
}

void
smtp_client_rset(struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->state == SMTP_CLIENT_STATE_READY);
    bool is_written = client_write_simple(client, "RSET\r\n");
    ASSERT(is_written); /* READY: every command was answered */
    client_enter(client, SMTP_CLIENT_STATE_RSET);
}

void
smtp_client_quit(struct smtp_client *client)
{
    ASSERT(client != NULL);
    ASSERT(client->state != SMTP_CLIENT_STATE_CLOSED);
    ASSERT(client->state != SMTP_CLIENT_STATE_FAILED);
    client->has_message = false;
    if (client->state == SMTP_CLIENT_STATE_TLS_HANDSHAKE ||
        client->state == SMTP_CLIENT_STATE_BODY) {
        /* Mid-handshake or mid-body a QUIT would be read as TLS or body. */
        client_enter(client, SMTP_CLIENT_STATE_CLOSED);
        client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
        return;
    }
    struct client_cmd cmd;
    cmd.len = 0;
    cmd.is_over = false;
    cmd_add_str(&cmd, "QUIT\r\n");
    if (!client_write(client, &cmd, 0)) {
        client_enter(client, SMTP_CLIENT_STATE_CLOSED);
        client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
        return;
    }
    client_enter(client, SMTP_CLIENT_STATE_QUIT);
}

const char *
smtp_client_event_name(enum smtp_client_event_kind kind)
{
    switch (kind) {
    case SMTP_CLIENT_EV_READY:
        return "ready";
    case SMTP_CLIENT_EV_TLS_GO:
        return "tls-go";
    case SMTP_CLIENT_EV_TLS_REFUSED:
        return "tls-refused";
    case SMTP_CLIENT_EV_AUTH_DONE:
        return "auth-done";
    case SMTP_CLIENT_EV_RCPT:
        return "rcpt";
    case SMTP_CLIENT_EV_SEND_BODY:
        return "send-body";
    case SMTP_CLIENT_EV_MESSAGE_DONE:
        return "message-done";
    case SMTP_CLIENT_EV_SESSION_FAILED:
        return "session-failed";
    case SMTP_CLIENT_EV_CLOSED:
        return "closed";
    case SMTP_CLIENT_EV_PROTOCOL_ERROR:
        return "protocol-error";
    }
    return "?";
}

/* The one place the state changes. */
static void
client_enter(struct smtp_client *client, enum smtp_client_state next)
{
    ASSERT(client->state != SMTP_CLIENT_STATE_FAILED);
    if (client->state == SMTP_CLIENT_STATE_CLOSED) {
        ASSERT(next == SMTP_CLIENT_STATE_CLOSED || next == SMTP_CLIENT_STATE_FAILED);
    }
    if (next == SMTP_CLIENT_STATE_READY) {
        ASSERT(!client->has_message);
    }
    if (next == SMTP_CLIENT_STATE_MAIL || next == SMTP_CLIENT_STATE_BODY ||
        next == SMTP_CLIENT_STATE_BDAT || next == SMTP_CLIENT_STATE_DATA_END) {
        ASSERT(client->has_message);
    }
    client->state = next;
}

/* A whole reply arrived. Returns true when it produced an event. */
static bool
client_on_reply(struct smtp_client *client, const struct smtp_client_reply *reply)
{
    size_t queued_before = client->queued_count;
    unsigned cls = reply->code / 100u;
    switch (client->state) {
    case SMTP_CLIENT_STATE_GREETING:
    case SMTP_CLIENT_STATE_EHLO:
    case SMTP_CLIENT_STATE_HELO:
        if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421) {
            client_closing(client, reply, SMTP_CLIENT_STAGE_FINAL);
        } else if (cls == 2 && client->state == SMTP_CLIENT_STATE_GREETING) {
            struct client_cmd cmd;
            client_build_ehlo(client, &cmd, "EHLO ");
            client_write_must(client, &cmd);
            client_enter(client, SMTP_CLIENT_STATE_EHLO);
        } else if (cls == 2) {
            client->caps.is_esmtp = client->state == SMTP_CLIENT_STATE_EHLO;
            client_enter(client, SMTP_CLIENT_STATE_READY);
            client_push_kind(client, SMTP_CLIENT_EV_READY);
        } else if (cls == 5 && client->state == SMTP_CLIENT_STATE_EHLO) {
            /* RFC 5321 section 3.2: an old server; say HELO instead. */
            memset(&client->caps, 0, sizeof(client->caps));
            struct client_cmd cmd;
            client_build_ehlo(client, &cmd, "HELO ");
            client_write_must(client, &cmd);
            client_enter(client, SMTP_CLIENT_STATE_HELO);
        } else {
            memset(&client->caps, 0, sizeof(client->caps));
            client_session_failed(client, reply);
        }
        break;
    case SMTP_CLIENT_STATE_STARTTLS:
        if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421) {
            client_closing(client, reply, SMTP_CLIENT_STAGE_FINAL);
        } else if (cls == 2) {
            client_enter(client, SMTP_CLIENT_STATE_TLS_HANDSHAKE);
            struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_TLS_GO, .reply = *reply};
            client_push(client, &ev);
        } else {
            struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_TLS_REFUSED,
                                           .reply = *reply,
                                           .result = result_of(reply->code)};
            client_push(client, &ev);
            client_enter(client, SMTP_CLIENT_STATE_READY);
            client_push_kind(client, SMTP_CLIENT_EV_READY);
        }
        break;
    case SMTP_CLIENT_STATE_AUTH:
        if (reply->code == 334 && !client->is_auth_cancelled) {
            /* We sent the initial response; a challenge means the server
             * wants something else. RFC 4954 section 4: "*" cancels. */
            client->is_auth_cancelled = true;
            (void)client_write_simple(client, "*\r\n"); /* false: failed, event queued */
        } else if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421) {
            client_closing(client, reply, SMTP_CLIENT_STAGE_FINAL);
        } else {
            struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_AUTH_DONE,
                                           .reply = *reply,
                                           .result = result_of(reply->code)};
            if (client->is_auth_cancelled && ev.result == SMTP_CLIENT_RESULT_OK) {
                /* Success after our cancel is nonsense. */
                client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
                break;
            }
            client_push(client, &ev);
            client_enter(client, SMTP_CLIENT_STATE_READY);
            client_push_kind(client, SMTP_CLIENT_EV_READY);
        }
        break;
    case SMTP_CLIENT_STATE_MAIL:
        client_on_txn_reply(client, reply);
        break;
    case SMTP_CLIENT_STATE_BDAT:
        if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421) {
            client_closing(client, reply,
                           client->is_bdat_last ? SMTP_CLIENT_STAGE_FINAL : SMTP_CLIENT_STAGE_DATA);
        } else if (client->is_bdat_last) {
            client_done(client, result_of(reply->code), SMTP_CLIENT_STAGE_FINAL, reply, false);
        } else if (cls == 2) {
            client_enter(client, SMTP_CLIENT_STATE_BODY);
            client_push_kind(client, SMTP_CLIENT_EV_SEND_BODY);
        } else {
            client_done(client, result_of(reply->code), SMTP_CLIENT_STAGE_DATA, reply, true);
        }
        break;
    case SMTP_CLIENT_STATE_DATA_END:
        if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421 && !client->is_data_discard) {
            client_closing(client, reply, SMTP_CLIENT_STAGE_FINAL);
        } else if (client->is_data_discard) {
            /* The server said 354 with nobody accepted; we ended the empty
             * body at once. The outcome is the one kept before. */
            struct smtp_client_reply saved = client->saved;
            enum smtp_client_result result =
                client->saved_stage == SMTP_CLIENT_STAGE_RCPT &&
                        client->rcpt_fail_count < client->msg.rcpt_count
                    ? SMTP_CLIENT_RESULT_DEFER
                    : result_of(saved.code);
            if (reply->code == 421) {
                struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_MESSAGE_DONE,
                                               .reply = saved,
                                               .result = result,
                                               .stage = client->saved_stage,
                                               .is_reusable = false};
                client->has_message = false;
                client_push(client, &ev);
                client_enter(client, SMTP_CLIENT_STATE_CLOSED);
                client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
                break;
            }
            client_done(client, result, client->saved_stage, &saved, false);
        } else {
            client_done(client, result_of(reply->code), SMTP_CLIENT_STAGE_FINAL, reply, false);
        }
        break;
    case SMTP_CLIENT_STATE_RSET:
        if (cls == 3) {
            client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        } else if (reply->code == 421) {
            client_closing(client, reply, SMTP_CLIENT_STAGE_FINAL);
        } else if (cls == 2) {
            client_enter(client, SMTP_CLIENT_STATE_READY);
            client_push_kind(client, SMTP_CLIENT_EV_READY);
        } else {
            client_session_failed(client, reply);
        }
        break;
    case SMTP_CLIENT_STATE_QUIT:
        client_enter(client, SMTP_CLIENT_STATE_CLOSED);
        client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
        break;
    case SMTP_CLIENT_STATE_READY:
    case SMTP_CLIENT_STATE_BODY:
        if (reply->code == 421) {
            /* A server closing an idle (or too slow) session says so. */
            client_closing(client, reply, SMTP_CLIENT_STAGE_DATA);
        } else {
            client_push_error(client, SMTP_CLIENT_ERR_UNEXPECTED, SMTP_CLIENT_REPLY_OK);
        }
        break;
    case SMTP_CLIENT_STATE_TLS_HANDSHAKE:
    case SMTP_CLIENT_STATE_CLOSED:
    case SMTP_CLIENT_STATE_FAILED:
        /* feed() never parses in these states. */
        ASSERT(false);
        break;
    }
    return client->queued_count > queued_before;
}

/* One line of a 250 reply to EHLO, after the first: a capability. */
static void
client_on_ehlo_line(struct smtp_client *client, struct span line)
{
    size_t kw_len = 0;
    while (kw_len < line.len && line.ptr[kw_len] != ' ' && line.ptr[kw_len] != '=') {
        kw_len++;
    }
    struct span keyword = span_make(line.ptr, kw_len);
    struct span rest = kw_len < line.len ? span_make(line.ptr + kw_len + 1, line.len - kw_len - 1)
                                         : span_make(line.ptr + line.len, 0);
    struct smtp_client_caps *caps = &client->caps;
    if (span_equals_nocase(keyword, "PIPELINING")) {
        caps->has_pipelining = true;
    } else if (span_equals_nocase(keyword, "8BITMIME")) {
        caps->has_8bitmime = true;
    } else if (span_equals_nocase(keyword, "SMTPUTF8")) {
        caps->has_smtputf8 = true;
    } else if (span_equals_nocase(keyword, "CHUNKING")) {
        caps->has_chunking = true;
    } else if (span_equals_nocase(keyword, "STARTTLS")) {
        caps->has_starttls = true;
    } else if (span_equals_nocase(keyword, "DSN")) {
        caps->has_dsn = true;
    } else if (span_equals_nocase(keyword, "ENHANCEDSTATUSCODES")) {
        caps->has_enhancedstatuscodes = true;
    } else if (span_equals_nocase(keyword, "SIZE")) {
        caps->has_size = true;
        size_t digits = 0;
        while (digits < rest.len && rest.ptr[digits] != ' ') {
            digits++;
        }
        bool ok = false;
        uint64_t v = parse_u64(span_make(rest.ptr, digits), &ok);
        /* No number or a bad one: the server has a limit we do not know;
         * send SIZE= and let it judge. */
        caps->size_max_bytes = ok ? v : 0;
    } else if (span_equals_nocase(keyword, "AUTH")) {
        /* "AUTH PLAIN LOGIN" or the old "AUTH=PLAIN LOGIN"; mechanisms are
         * bounded by the line length. */
        size_t i = 0;
        while (i < rest.len) {
            size_t start = i;
            while (i < rest.len && rest.ptr[i] != ' ') {
                i++;
            }
            struct span mech = span_make(rest.ptr + start, i - start);
            if (span_equals_nocase(mech, "PLAIN")) {
                caps->auth_mechs |= SMTP_CLIENT_AUTH_PLAIN;
            } else if (span_equals_nocase(mech, "LOGIN")) {
                caps->auth_mechs |= SMTP_CLIENT_AUTH_LOGIN;
            } else if (span_equals_nocase(mech, "CRAM-MD5")) {
                caps->auth_mechs |= SMTP_CLIENT_AUTH_CRAM_MD5;
            } else if (span_equals_nocase(mech, "XOAUTH2")) {
                caps->auth_mechs |= SMTP_CLIENT_AUTH_XOAUTH2;
            }
            i++;
        }
    }
}

/* A reply in the MAIL state: to MAIL, the next RCPT or DATA. */
static void
client_on_txn_reply(struct smtp_client *client, const struct smtp_client_reply *reply)
{
    unsigned cls = reply->code / 100u;
    enum smtp_client_stage stage;
    if (client->is_mail_sent && !client->is_mail_replied) {
        stage = SMTP_CLIENT_STAGE_MAIL;
    } else if (client->rcpt_replied_count < client->rcpt_sent_count) {
        stage = SMTP_CLIENT_STAGE_RCPT;
    } else if (client->is_data_sent) {
        stage = SMTP_CLIENT_STAGE_DATA;
    } else {
        client_push_error(client, SMTP_CLIENT_ERR_UNEXPECTED, SMTP_CLIENT_REPLY_OK);
        return;
    }
    if (cls == 3 && stage != SMTP_CLIENT_STAGE_DATA) {
        client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        return;
    }
    if (cls == 2 && stage == SMTP_CLIENT_STAGE_DATA) {
        client_push_error(client, SMTP_CLIENT_ERR_BAD_CODE, SMTP_CLIENT_REPLY_OK);
        return;
    }
    if (reply->code == 421) {
        /* The server is going away. Whatever was accepted is lost with the
         * transaction: everything not already refused is deferred. */
        if (stage == SMTP_CLIENT_STAGE_RCPT && client->is_mail_ok) {
            size_t index = client->rcpt_replied_count;
            client->rcpt_replied_count++;
            struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_RCPT,
                                           .reply = *reply,
                                           .result = SMTP_CLIENT_RESULT_DEFER,
                                           .rcpt_index = index};
            client_push(client, &ev);
        }
        client_closing(client, reply, stage);
        return;
    }
    switch (stage) {
    case SMTP_CLIENT_STAGE_MAIL:
        client->is_mail_replied = true;
        client->is_mail_ok = cls == 2;
        if (!client->is_mail_ok) {
            client_save(client, reply, SMTP_CLIENT_STAGE_MAIL);
            if (!client->is_pipelined) {
                /* No transaction was opened, so no RSET. */
                struct smtp_client_reply saved = client->saved;
                client_done(client, result_of(reply->code), SMTP_CLIENT_STAGE_MAIL, &saved, false);
                return;
            }
        }
        break;
    case SMTP_CLIENT_STAGE_RCPT: {
        size_t index = client->rcpt_replied_count;
        client->rcpt_replied_count++;
        if (client->is_mail_ok) {
            enum smtp_client_result result = result_of(reply->code);
            if (result == SMTP_CLIENT_RESULT_OK) {
                client->rcpt_ok_count++;
            } else if (result == SMTP_CLIENT_RESULT_FAIL) {
                client->rcpt_fail_count++;
            }
            struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_RCPT,
                                           .reply = *reply,
                                           .result = result,
                                           .rcpt_index = index};
            client_push(client, &ev);
        }
        if (client->rcpt_replied_count < client->msg.rcpt_count) {
            break;
        }
        if (client->is_mail_ok && client->rcpt_ok_count == 0) {
            client_save(client, reply, SMTP_CLIENT_STAGE_RCPT);
        }
        if (client->is_data_sent) {
            break; /* DATA's reply decides. */
        }
        if (!client->is_mail_ok) {
            struct smtp_client_reply saved = client->saved;
            client_done(client, result_of(saved.code), SMTP_CLIENT_STAGE_MAIL, &saved, true);
            return;
        }
        if (client->rcpt_ok_count == 0) {
            struct smtp_client_reply saved = client->saved;
            client_done(client,
                        client->rcpt_fail_count == client->msg.rcpt_count
                            ? SMTP_CLIENT_RESULT_FAIL
                            : SMTP_CLIENT_RESULT_DEFER,
                        SMTP_CLIENT_STAGE_RCPT, &saved, true);
            return;
        }
        if (client->is_bdat) {
            client_enter(client, SMTP_CLIENT_STATE_BODY);
            client_push_kind(client, SMTP_CLIENT_EV_SEND_BODY);
            return;
        }
        break; /* client_fill writes DATA. */
    }
    case SMTP_CLIENT_STAGE_DATA: {
        bool has_rcpt = client->is_mail_ok && client->rcpt_ok_count > 0;
        if (cls == 3 && has_rcpt) {
            client_enter(client, SMTP_CLIENT_STATE_BODY);
            client_push_kind(client, SMTP_CLIENT_EV_SEND_BODY);
            return;
        }
        if (cls == 3) {
            /* RFC 2920 section 3.1 says the server must refuse this DATA;
             * one did not. End the empty body at once. */
            client->is_data_discard = true;
            client->is_body_sent = true;
            if (client_write_simple(client, ".\r\n")) {
                client_enter(client, SMTP_CLIENT_STATE_DATA_END);
            }
            return;
        }
        if (has_rcpt) {
            client_done(client, result_of(reply->code), SMTP_CLIENT_STAGE_DATA, reply, true);
            return;
        }
        struct smtp_client_reply saved = client->saved;
        enum smtp_client_result result = client->saved_stage == SMTP_CLIENT_STAGE_RCPT &&
                                                 client->rcpt_fail_count < client->msg.rcpt_count
                                             ? SMTP_CLIENT_RESULT_DEFER
                                             : result_of(saved.code);
        client_done(client, result, client->saved_stage, &saved, true);
        return;
    }
    case SMTP_CLIENT_STAGE_FINAL:
        ASSERT(false);
        break;
    }
    client_fill(client);
}

/* Write the transaction's next commands: all that fit when pipelining,
 * else the next one once every earlier reply is in. */
static void
client_fill(struct smtp_client *client)
{
    if (client->state != SMTP_CLIENT_STATE_MAIL || !client->has_message) {
        return;
    }
    const struct smtp_client_message *m = &client->msg;
    bool is_waiting = (client->is_mail_sent && !client->is_mail_replied) ||
                      client->rcpt_replied_count < client->rcpt_sent_count || client->is_data_sent;
    if (!client->is_pipelined && is_waiting) {
        return;
    }
    /* Bounded: each round writes one command or stops. */
    for (;;) {
        struct client_cmd cmd;
        if (!client->is_mail_sent) {
            client_build_mail(client, m, &cmd);
            ASSERT(!cmd.is_over);
            if (!client_write(client, &cmd, CLIENT_RESERVE_BYTES)) {
                return;
            }
            client->is_mail_sent = true;
        } else if (client->rcpt_sent_count < m->rcpt_count) {
            if (!client->is_pipelined && !client->is_mail_ok) {
                return;
            }
            client_build_rcpt(client, &m->rcpts[client->rcpt_sent_count], &cmd);
            ASSERT(!cmd.is_over);
            if (!client_write(client, &cmd, CLIENT_RESERVE_BYTES)) {
                return;
            }
            client->rcpt_sent_count++;
        } else if (!client->is_bdat && !client->is_data_sent) {
            if (!client->is_pipelined && client->rcpt_ok_count == 0) {
                return;
            }
            cmd.len = 0;
            cmd.is_over = false;
            cmd_add_str(&cmd, "DATA\r\n");
            if (!client_write(client, &cmd, CLIENT_RESERVE_BYTES)) {
                return;
            }
            client->is_data_sent = true;
        } else {
            return;
        }
        if (!client->is_pipelined) {
            return;
        }
    }
}

static void
client_push(struct smtp_client *client, const struct smtp_client_event *event)
{
    ASSERT(client->queued_count < CLIENT_QUEUE_MAX);
    client->queued[client->queued_count++] = *event;
}

static void
client_push_kind(struct smtp_client *client, enum smtp_client_event_kind kind)
{
    struct smtp_client_event ev = {.kind = kind};
    client_push(client, &ev);
}

static void
client_push_error(struct smtp_client *client, enum smtp_client_error error,
                  enum smtp_client_reply_error reply_error)
{
    struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_PROTOCOL_ERROR,
                                   .error = error,
                                   .reply_error = reply_error,
                                   .had_message = client->has_message,
                                   .was_body_sent = client->has_message && client->is_body_sent,
                                   .result = SMTP_CLIENT_RESULT_DEFER};
    if (error != SMTP_CLIENT_ERR_REPLY && error != SMTP_CLIENT_ERR_TLS_INJECTION) {
        ev.reply = client->parser.reply;
    }
    client->has_message = false;
    client_enter(client, SMTP_CLIENT_STATE_FAILED);
    client_push(client, &ev);
}

/* The message is over: MESSAGE_DONE, then READY (now, or after RSET). */
static void
client_done(struct smtp_client *client, enum smtp_client_result result,
            enum smtp_client_stage stage, const struct smtp_client_reply *reply, bool then_rset)
{
    ASSERT(client->has_message);
    struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_MESSAGE_DONE,
                                   .reply = *reply,
                                   .result = result,
                                   .stage = stage,
                                   .is_reusable = true};
    client->has_message = false;
    client_push(client, &ev);
    if (then_rset) {
        if (client_write_simple(client, "RSET\r\n")) {
            client_enter(client, SMTP_CLIENT_STATE_RSET);
        }
        return;
    }
    client_enter(client, SMTP_CLIENT_STATE_READY);
    client_push_kind(client, SMTP_CLIENT_EV_READY);
}

/* 421: the server closes. A message in progress is deferred; stage says
 * which reply was the 421. */
static void
client_closing(struct smtp_client *client, const struct smtp_client_reply *reply,
               enum smtp_client_stage stage)
{
    if (client->has_message) {
        struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_MESSAGE_DONE,
                                       .reply = *reply,
                                       .result = SMTP_CLIENT_RESULT_DEFER,
                                       .stage = stage,
                                       .is_reusable = false};
        client->has_message = false;
        client_push(client, &ev);
    } else {
        struct smtp_client_event ev = {.kind = SMTP_CLIENT_EV_SESSION_FAILED,
                                       .reply = *reply,
                                       .result = result_of(reply->code)};
        client_push(client, &ev);
    }
    client_enter(client, SMTP_CLIENT_STATE_CLOSED);
    client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
}

/* A refusal that leaves the server talking: say QUIT politely. */
static void
client_session_failed(struct smtp_client *client, const struct smtp_client_reply *reply)
{
    ASSERT(!client->has_message);
    struct smtp_client_event ev = {
        .kind = SMTP_CLIENT_EV_SESSION_FAILED, .reply = *reply, .result = result_of(reply->code)};
    client_push(client, &ev);
    struct client_cmd cmd;
    cmd.len = 0;
    cmd.is_over = false;
    cmd_add_str(&cmd, "QUIT\r\n");
    if (client_write(client, &cmd, 0)) {
        client_enter(client, SMTP_CLIENT_STATE_QUIT);
    } else {
        client_enter(client, SMTP_CLIENT_STATE_CLOSED);
        client_push_kind(client, SMTP_CLIENT_EV_CLOSED);
    }
}

/* Keep a reply whose MESSAGE_DONE comes later, when the parser's text
 * will have been overwritten. */
static void
client_save(struct smtp_client *client, const struct smtp_client_reply *reply,
            enum smtp_client_stage stage)
{
    ASSERT(reply->text.len <= sizeof(client->saved_text));
    if (reply->text.len > 0) {
        memmove(client->saved_text, reply->text.ptr, reply->text.len);
    }
    client->saved = *reply;
    client->saved.text = span_make(client->saved_text, reply->text.len);
    client->saved_stage = stage;
}

/* A short command that answers a reply. With an honest server every
 * earlier command has been answered, so was sent, and CLIENT_RESERVE_BYTES
 * is free; false (and a protocol error) only when the server answered
 * commands it cannot have read yet. */
static bool
client_write_simple(struct smtp_client *client, const char *line)
{
    struct client_cmd cmd;
    cmd.len = 0;
    cmd.is_over = false;
    cmd_add_str(&cmd, line);
    ASSERT(cmd.len <= 16);
    if (!client_write(client, &cmd, 0)) {
        client_push_error(client, SMTP_CLIENT_ERR_UNEXPECTED, SMTP_CLIENT_REPLY_OK);
        return false;
    }
    return true;
}

/* A command written where the output is known to be nearly empty (EHLO,
 * HELO, BDAT, AUTH from READY): not fitting is our bug. */
static void
client_write_must(struct smtp_client *client, const struct client_cmd *cmd)
{
    bool is_written = client_write(client, cmd, 0);
    ASSERT(is_written);
}

/* Append a whole command to the output, or return false when it does not
 * fit (the caller tries again after output_consumed). */
static bool
client_write(struct smtp_client *client, const struct client_cmd *cmd, size_t reserve_bytes)
{
    ASSERT(!cmd->is_over);
    ASSERT(cmd->len >= 2);
    ASSERT(reserve_bytes < SMTP_CLIENT_OUT_BYTES - SMTP_CLIENT_COMMAND_BYTES_MAX);
    size_t need = cmd->len + reserve_bytes;
    if (SMTP_CLIENT_OUT_BYTES - client->out_end < need && client->out_start > 0) {
        size_t pending = client->out_end - client->out_start;
        memmove(client->out, client->out + client->out_start, pending);
        explicit_bzero(client->out + pending, client->out_end - pending);
        client->out_start = 0;
        client->out_end = pending;
    }
    if (SMTP_CLIENT_OUT_BYTES - client->out_end < need) {
        return false;
    }
    memcpy(client->out + client->out_end, cmd->buf, cmd->len);
    client->out_end += cmd->len;
    return true;
}

static void
client_build_ehlo(const struct smtp_client *client, struct client_cmd *cmd, const char *verb)
{
    cmd->len = 0;
    cmd->is_over = false;
    cmd_add_str(cmd, verb);
    cmd_add(cmd, client->helo_name, client->helo_len);
    cmd_add_str(cmd, "\r\n");
    ASSERT(!cmd->is_over);
}

static void
client_build_mail(const struct smtp_client *client, const struct smtp_client_message *msg,
                  struct client_cmd *cmd)
{
    const struct smtp_client_caps *caps = &client->caps;
    cmd->len = 0;
    cmd->is_over = false;
    cmd_add_str(cmd, "MAIL FROM:<");
    cmd_add(cmd, msg->mail_from.ptr, msg->mail_from.len);
    cmd_add_str(cmd, ">");
    if (caps->has_size && msg->size_bytes > 0) {
        cmd_add_str(cmd, " SIZE=");
        cmd_add_u64(cmd, msg->size_bytes);
    }
    if (msg->needs_8bitmime && caps->has_8bitmime) {
        cmd_add_str(cmd, " BODY=8BITMIME");
    }
    if (msg->needs_smtputf8 && caps->has_smtputf8) {
        cmd_add_str(cmd, " SMTPUTF8");
    }
    if (caps->has_dsn) {
        if (msg->ret == SMTP_CLIENT_RET_FULL) {
            cmd_add_str(cmd, " RET=FULL");
        } else if (msg->ret == SMTP_CLIENT_RET_HDRS) {
            cmd_add_str(cmd, " RET=HDRS");
        }
        if (msg->envid.len > 0) {
            cmd_add_str(cmd, " ENVID=");
            cmd_add(cmd, msg->envid.ptr, msg->envid.len);
        }
    }
    cmd_add_str(cmd, "\r\n");
}

static void
client_build_rcpt(const struct smtp_client *client, const struct smtp_client_rcpt *rcpt,
                  struct client_cmd *cmd)
{
    cmd->len = 0;
    cmd->is_over = false;
    cmd_add_str(cmd, "RCPT TO:<");
    cmd_add(cmd, rcpt->address.ptr, rcpt->address.len);
    cmd_add_str(cmd, ">");
    if (client->caps.has_dsn && rcpt->notify != 0) {
        if ((rcpt->notify & SMTP_CLIENT_NOTIFY_NEVER) != 0) {
            cmd_add_str(cmd, " NOTIFY=NEVER");
        } else {
            static const struct {
                uint32_t bit;
                const char *name;
            } names[] = {{SMTP_CLIENT_NOTIFY_SUCCESS, "SUCCESS"},
                         {SMTP_CLIENT_NOTIFY_FAILURE, "FAILURE"},
                         {SMTP_CLIENT_NOTIFY_DELAY, "DELAY"}};
            const char *sep = " NOTIFY=";
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                if ((rcpt->notify & names[i].bit) != 0) {
                    cmd_add_str(cmd, sep);
                    cmd_add_str(cmd, names[i].name);
                    sep = ",";
                }
            }
        }
    }
    if (client->caps.has_dsn && rcpt->orcpt.len > 0) {
        cmd_add_str(cmd, " ORCPT=");
        cmd_add(cmd, rcpt->orcpt.ptr, rcpt->orcpt.len);
    }
    cmd_add_str(cmd, "\r\n");
}

static void
cmd_add(struct client_cmd *cmd, const char *p, size_t n)
{
    if (cmd->is_over || n > sizeof(cmd->buf) - cmd->len) {
        cmd->is_over = true;
        return;
    }
    if (n > 0) {
        memcpy(cmd->buf + cmd->len, p, n);
    }
    cmd->len += n;
}

static void
cmd_add_str(struct client_cmd *cmd, const char *s)
{
    cmd_add(cmd, s, strlen(s));
}

static void
cmd_add_u64(struct client_cmd *cmd, uint64_t v)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof(digits) - 1 - n] = (char)('0' + v % 10);
        v /= 10;
        n++;
    } while (v > 0);
    cmd_add(cmd, digits + sizeof(digits) - n, n);
}

static enum smtp_client_result
result_of(uint16_t code)
{
    if (code / 100 == 2) {
        return SMTP_CLIENT_RESULT_OK;
    }
    if (code / 100 == 5) {
        return SMTP_CLIENT_RESULT_FAIL;
    }
    return SMTP_CLIENT_RESULT_DEFER;
}

/* Bytes that may sit inside a path or a HELO name on our command line: no
 * controls, no space (a path with a quoted space is allowed by RFC 5321 but
 * we send what we accepted, and our server refuses those), no '<' or '>'.
 * Bytes >= 0x80 are allowed (SMTPUTF8 addresses). */
static bool
text_is_command_safe(struct span s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c <= ' ' || c == 0x7f || c == '<' || c == '>') {
            return false;
        }
    }
    return true;
}

static bool
text_is_8bit(struct span s)
{
    for (size_t i = 0; i < s.len; i++) {
        if ((unsigned char)s.ptr[i] >= 0x80) {
            return true;
        }
    }
    return false;
}

/* RFC 3461 section 4: xtext is "!".."~" except "=", with "+HH" escapes;
 * we pass on what we received, so check only that it is printable ASCII
 * without "=" and space. */
static bool
xtext_is_valid(struct span s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x21 || c > 0x7e || c == '=') {
            return false;
        }
    }
    return true;
}

static uint64_t
parse_u64(struct span s, bool *ok_out)
{
    uint64_t v = 0;
    *ok_out = false;
    if (s.len == 0 || s.len > 20) {
        return 0;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9') {
            return 0;
        }
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return 0;
        }
        v = v * 10 + d;
    }
    *ok_out = true;
    return v;
}
