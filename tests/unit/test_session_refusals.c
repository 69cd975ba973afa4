/*
 * tests/unit/test_session_refusals.c - what the SMTP and IMAP sessions tell
 * their owner for the metrics: every refusal the SMTP session decides
 * itself, with its reason (callbacks.refused), and every IMAP command it
 * reads, by name (callbacks.command_read).
 *
 * A small fake owner answers each request at once (spool, AUTH, delivery,
 * STARTTLS; IMAP: scratch, AUTH, mailbox commands) and records the
 * reports. Each case is a client byte stream and the exact list of
 * reports; it runs whole and one byte at a time, and both runs must give
 * the same list. Every reported SMTP line must be the reply just queued
 * (its bytes end where the output ends, followed by CRLF), and the
 * owner's own refusals (rcpt verdicts, LMTP per-recipient lines) must
 * never be reported: the listener counts those itself.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/imap/imap_session.h"
#include "proto/smtp/smtp_session.h"
#include "tests/unit/unit.h"

#define REPORTS_MAX 16
#define REPORT_TEXT_BYTES 48
#define OUT_BYTES 65536
#define BODY_BYTES (4 * SMTP_LINE_BYTES_MAX)

/* ---- SMTP ---------------------------------------------------------------------- */

struct smtp_report {
    enum smtp_refusal reason;
    char              text[REPORT_TEXT_BYTES]; /* the reply's start */
};

struct smtp_owner {
    struct smtp_session        session;
    struct smtp_session_config config;
    bool                       is_open_failing;
    uint8_t                    body[BODY_BYTES];
    struct smtp_report         reports[REPORTS_MAX];
    size_t                     report_count;
    unsigned                   bad_reports; /* a report that is not the line just queued */
    char                       out[OUT_BYTES];
    size_t                     out_len;
};

static enum smtp_rcpt_verdict
smtp_owner_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    (void)owner;
    struct span local = request->path->local_part;
    return local.len >= 7 && memcmp(local.ptr, "unknown", 7) == 0 ? SMTP_RCPT_UNKNOWN_USER
                                                                 : SMTP_RCPT_ACCEPT;
}

static void
smtp_owner_txn_abort(void *owner)
{
    (void)owner;
}

/* alice may send as herself only. */
static bool
smtp_owner_sender_allowed(void *owner, const char *user, struct span mailbox)
{
    (void)owner;
    return strcmp(user, "alice@local.test") == 0 && span_equals_nocase(mailbox, "alice@local.test");
}

/* LMTP: the second recipient is over quota, the others delivered. */
static void
smtp_owner_rcpt_reply(void *owner, uint32_t index, char *reply, size_t reply_bytes)
{
    (void)owner;
    (void)snprintf(reply, reply_bytes, index == 1 ? "552 5.2.2 <r%u> Error: mailbox over quota"
                                                  : "250 2.0.0 <r%u> Ok: delivered",
                   index);
}

static void
smtp_owner_refused(void *owner, enum smtp_refusal reason, struct span reply)
{
    struct smtp_owner *o = owner;
    const struct smtp_session *s = &o->session;
    /* The line just queued: it ends where the output ends, with CRLF. */
    const char *end = reply.ptr + reply.len;
    if (reply.len == 0 || reply.ptr < s->out || end + 2 != s->out + s->out_len || end[0] != '\r' ||
        end[1] != '\n' || (reply.ptr != s->out && reply.ptr[-1] != '\n')) {
        o->bad_reports++;
    }
    if (o->report_count == REPORTS_MAX) {
        o->bad_reports++;
        return;
    }
    struct smtp_report *r = &o->reports[o->report_count++];
    r->reason = reason;
    size_t n = reply.len < sizeof(r->text) - 1 ? reply.len : sizeof(r->text) - 1;
    memcpy(r->text, reply.ptr, n);
    r->text[n] = '\0';
}

static const struct smtp_session_callbacks smtp_owner_callbacks = {
    .rcpt = smtp_owner_rcpt,
    .txn_abort = smtp_owner_txn_abort,
    .sender_allowed = smtp_owner_sender_allowed,
    .rcpt_reply = smtp_owner_rcpt_reply,
    .refused = smtp_owner_refused,
};

static void
smtp_owner_drain(struct smtp_owner *o)
{
    struct span out = smtp_session_output(&o->session);
    if (o->out_len + out.len <= sizeof(o->out)) {
        memcpy(o->out + o->out_len, out.ptr, out.len);
        o->out_len += out.len;
    }
    smtp_session_output_sent(&o->session, out.len);
}

/* Every request, answered at once. */
static void
smtp_owner_serve(struct smtp_owner *o)
{
    struct smtp_session *s = &o->session;
    for (unsigned round = 0; round < 64; round++) {
        smtp_owner_drain(o);
        switch (smtp_session_take_request(s)) {
        case SMTP_REQUEST_NONE:
            return;
        case SMTP_REQUEST_SPOOL_OPEN:
            if (o->is_open_failing) {
                smtp_session_spool_opened(s, -ENOSPC, NULL, 0, NULL, 0);
            } else {
                smtp_session_spool_opened(s, 0, o->body, sizeof(o->body), "QID", 1700000000);
            }
            break;
        case SMTP_REQUEST_SPOOL_WRITE:
            smtp_session_spool_written(s, 0);
            break;
        case SMTP_REQUEST_DELIVER:
            if (o->config.is_lmtp) {
                smtp_session_delivered_each(s);
            } else {
                smtp_session_delivered(s, "250 2.0.0 Ok: queued as QID");
            }
            break;
        case SMTP_REQUEST_AUTH: {
            const char *user = smtp_session_auth_user(s);
            if (strcmp(user, "temp@local.test") == 0) {
                smtp_session_auth_tempfail(s);
                break;
            }
            bool is_ok = strcmp(user, "alice@local.test") == 0 &&
                         strcmp(smtp_session_auth_password(s), "secret") == 0;
            smtp_session_auth_done(s, is_ok, is_ok ? "alice@local.test" : NULL);
            break;
        }
        case SMTP_REQUEST_STARTTLS:
            smtp_session_tls_started(s);
            break;
        }
    }
    CHECK(false); /* a request loop */
}

enum smtp_setup {
    SETUP_SMTP,
    SETUP_SUBMISSION,          /* not loopback, no TLS: AUTH needs STARTTLS first */
    SETUP_SUBMISSION_LOOPBACK, /* AUTH offered */
    SETUP_SMTP_TLS,            /* TLS already on */
    SETUP_LMTP,
};

struct smtp_case {
    const char        *name;
    enum smtp_setup    setup;
    uint64_t           size_limit;       /* 0: 1 MB */
    uint32_t           recipient_limit;  /* 0: 100 */
    uint32_t           error_limit;      /* 0: 20 */
    uint32_t           junk_limit;       /* 0: 100 */
    uint32_t           hopcount_limit;
    bool               is_open_failing;
    const char        *input;
    size_t             report_count;
    struct smtp_report reports[4];
    const char        *out_contains;     /* a reply that must be on the wire, or NULL */
};

#define EHLO "EHLO client.test\r\n"
#define TXN EHLO "MAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\n"
/* \0alice@local.test\0secret and \0alice@local.test\0wrong, \0temp@local.test\0x */
#define AUTH_OK "AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAc2VjcmV0\r\n"
#define AUTH_BAD "AUTH PLAIN AGFsaWNlQGxvY2FsLnRlc3QAd3Jvbmc=\r\n"
#define AUTH_TEMP "AUTH PLAIN AHRlbXBAbG9jYWwudGVzdAB4\r\n"
#define BIG_LINE                                                                               \
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678\r\n"

static const struct smtp_case smtp_cases[] = {
    { "a clean transaction reports nothing", SETUP_SMTP, 0, 0, 0, 0, 0, false,
      TXN "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nRSET\r\nNOOP\r\nVRFY bob\r\nHELP\r\nQUIT\r\n",
      0, { { 0, "" } }, "250 2.0.0 Ok: queued as QID" },
    { "unknown verb", SETUP_SMTP, 0, 0, 0, 0, 0, false, EHLO "FOO\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: command not recognized" } }, NULL },
    { "MAIL before EHLO", SETUP_SMTP, 0, 0, 0, 0, 0, false, "MAIL FROM:<a@sender.test>\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: send HELO/EHLO first" } }, NULL },
    { "a MAIL parameter we do not know", SETUP_SMTP, 0, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test> BODY=9BIT\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "555 5.5.4 Unsupported BODY parameter" } }, NULL },
    { "EXPN is not offered", SETUP_SMTP, 0, 0, 0, 0, 0, false, EHLO "EXPN staff\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "502 5.5.1 Error: command not implemented" } }, NULL },
    { "DATA without a recipient", SETUP_SMTP, 0, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test>\r\nDATA\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "554 5.5.1 Error: no valid recipients" } }, NULL },
    { "BDAT before MAIL", SETUP_SMTP, 0, 0, 0, 0, 0, false, EHLO "BDAT 3 LAST\r\nabc", 1,
      { { SMTP_REFUSAL_PROTOCOL, "503 5.5.1 Error: need MAIL command" } }, NULL },
    { "STARTTLS under TLS", SETUP_SMTP_TLS, 0, 0, 0, 0, 0, false, EHLO "STARTTLS\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "554 5.5.1 Error: TLS already active" } }, NULL },
    { "SIZE= over the limit", SETUP_SMTP, 1000, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test> SIZE=1001\r\n", 1,
      { { SMTP_REFUSAL_SIZE, "552 5.3.4 Message size exceeds fixed limit" } }, NULL },
    { "SIZE= at the limit", SETUP_SMTP, 1000, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test> SIZE=1000\r\n", 0, { { 0, "" } }, "250 2.1.0 Ok" },
    { "message over the limit", SETUP_SMTP, 100, 0, 0, 0, 0, false,
      TXN "DATA\r\n" BIG_LINE BIG_LINE ".\r\nNOOP\r\n", 1,
      { { SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big" } }, NULL },
    { "BDAT chunks over the limit", SETUP_SMTP, 100, 0, 0, 0, 0, false,
      TXN "BDAT 162\r\n" BIG_LINE BIG_LINE "BDAT 0 LAST\r\n", 2,
      { { SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big" },
        { SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big" } }, NULL },
    { "too many hops", SETUP_SMTP, 0, 0, 0, 0, 2, false,
      TXN "DATA\r\nReceived: from a\r\nReceived: from b\r\n\r\nx\r\n.\r\n", 1,
      { { SMTP_REFUSAL_HOP_LIMIT, "554 5.4.6 Error: too many hops" } }, NULL },
    { "spool file cannot be made", SETUP_SMTP, 0, 0, 0, 0, 0, true, TXN "DATA\r\n", 1,
      { { SMTP_REFUSAL_LOCAL_ERROR, "451 4.3.0 Error: cannot create queue file, try " } },
      NULL },
    { "the owner's RCPT refusal is not reported", SETUP_SMTP, 0, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test>\r\nRCPT TO:<unknown@local.test>\r\n", 0, { { 0, "" } },
      "550 5.1.1 <unknown@local.test>" },
    { "recipients past the limit", SETUP_SMTP, 0, 2, 0, 0, 0, false,
      TXN "RCPT TO:<carol@local.test>\r\nRCPT TO:<dave@local.test>\r\n", 1,
      { { SMTP_REFUSAL_TOO_MANY_RECIPIENTS, "452 4.5.3 Error: too many recipients" } }, NULL },
    { "the error limit's 421 is not a refusal of its own", SETUP_SMTP, 0, 0, 3, 0, 0, false,
      EHLO "FOO\r\nBAR\r\nBAZ\r\n", 3,
      { { SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: command not recognized" },
        { SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: command not recognized" },
        { SMTP_REFUSAL_PROTOCOL, "500 5.5.2 Error: command not recognized" } },
      "421 4.7.0 mx.test Error: too many errors" },
    { "junk commands past the limit", SETUP_SMTP, 0, 0, 0, 2, 0, false,
      EHLO "NOOP\r\nNOOP\r\nNOOP\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "421 4.7.0 mx.test Error: too many junk commands" } }, NULL },
    { "MAIL on submission before AUTH", SETUP_SUBMISSION, 0, 0, 0, 0, 0, false,
      EHLO "MAIL FROM:<a@sender.test>\r\n", 1,
      { { SMTP_REFUSAL_AUTH_REQUIRED, "530 5.7.0 Authentication required" } }, NULL },
    { "AUTH before STARTTLS", SETUP_SUBMISSION, 0, 0, 0, 0, 0, false, EHLO AUTH_OK, 1,
      { { SMTP_REFUSAL_TLS_REQUIRED, "538 5.7.11 Encryption required for requested " } },
      NULL },
    { "AUTH after STARTTLS", SETUP_SUBMISSION, 0, 0, 0, 0, 0, false,
      EHLO "STARTTLS\r\n" EHLO AUTH_OK "MAIL FROM:<alice@local.test>\r\n", 0, { { 0, "" } },
      "235 2.7.0 Authentication successful" },
    { "wrong password", SETUP_SUBMISSION_LOOPBACK, 0, 0, 0, 0, 0, false, EHLO AUTH_BAD, 1,
      { { SMTP_REFUSAL_AUTH_FAILED, "535 5.7.8 Error: authentication failed" } }, NULL },
    { "password check could not run", SETUP_SUBMISSION_LOOPBACK, 0, 0, 0, 0, 0, false,
      EHLO AUTH_TEMP, 1,
      { { SMTP_REFUSAL_LOCAL_ERROR, "454 4.7.0 Temporary authentication failure" } }, NULL },
    { "undecodable SASL response", SETUP_SUBMISSION_LOOPBACK, 0, 0, 0, 0, 0, false,
      EHLO "AUTH PLAIN\r\n!!!\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "501 5.5.2 Cannot decode response" } }, NULL },
    { "MAIL FROM not the user's", SETUP_SUBMISSION_LOOPBACK, 0, 0, 0, 0, 0, false,
      EHLO AUTH_OK "MAIL FROM:<bob@local.test>\r\nMAIL FROM:<alice@local.test>\r\n", 1,
      { { SMTP_REFUSAL_SENDER_MISMATCH, "553 5.7.1 <bob@local.test>: Sender address reje" } },
      "250 2.1.0 Ok" },
    { "LMTP: HELO", SETUP_LMTP, 0, 0, 0, 0, 0, false, "HELO front.test\r\n", 1,
      { { SMTP_REFUSAL_PROTOCOL, "500 5.5.1 Error: this is LMTP, send LHLO" } }, NULL },
    { "LMTP: the owner's per-recipient lines are not reported", SETUP_LMTP, 0, 0, 0, 0, 0,
      false,
      "LHLO front.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\n"
      "RCPT TO:<carol@local.test>\r\nDATA\r\nx\r\n.\r\n",
      0, { { 0, "" } }, "552 5.2.2 <r1> Error: mailbox over quota" },
    { "LMTP: a message too big, once per recipient", SETUP_LMTP, 100, 0, 0, 0, 0, false,
      "LHLO front.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<bob@local.test>\r\n"
      "RCPT TO:<carol@local.test>\r\nDATA\r\n" BIG_LINE BIG_LINE ".\r\n",
      2,
      { { SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big" },
        { SMTP_REFUSAL_SIZE, "552 5.3.4 Error: message file too big" } }, NULL },
};

static void
smtp_owner_start(struct smtp_owner *o, const struct smtp_case *c)
{
    memset(o, 0, sizeof(*o));
    o->config = (struct smtp_session_config){
        .hostname = "mx.test",
        .message_size_limit = c->size_limit != 0 ? c->size_limit : 1000000,
        .recipient_limit = c->recipient_limit != 0 ? c->recipient_limit : 100,
        .error_limit = c->error_limit != 0 ? c->error_limit : 20,
        .junk_command_limit = c->junk_limit != 0 ? c->junk_limit : 100,
        .hopcount_limit = c->hopcount_limit,
        .is_submission = c->setup == SETUP_SUBMISSION || c->setup == SETUP_SUBMISSION_LOOPBACK,
        .is_lmtp = c->setup == SETUP_LMTP,
    };
    o->is_open_failing = c->is_open_failing;
    smtp_session_init(&o->session, &o->config, &smtp_owner_callbacks, o, "192.0.2.1");
    smtp_session_set_transport(&o->session, c->setup == SETUP_SUBMISSION,
                               c->setup == SETUP_SMTP_TLS,
                               c->setup == SETUP_SUBMISSION_LOOPBACK);
    smtp_owner_drain(o);
}

/* Feed input in pieces of at most step bytes (0: whole). */
static void
smtp_owner_run(struct smtp_owner *o, const char *input, size_t step)
{
    size_t len = strlen(input);
    size_t at = 0;
    for (unsigned stalls = 0; at < len && stalls < 4;) {
        size_t piece = step == 0 || len - at < step ? len - at : step;
        size_t used = smtp_session_feed(&o->session, (const uint8_t *)input + at, piece);
        at += used;
        stalls = used == 0 ? stalls + 1 : 0;
        smtp_owner_serve(o);
        if (smtp_session_is_closing(&o->session)) {
            break;
        }
    }
    smtp_owner_serve(o);
}

static bool
out_contains(const struct smtp_owner *o, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= o->out_len; i++) {
        if (memcmp(o->out + i, text, n) == 0) {
            return true;
        }
    }
    return false;
}

static void
test_smtp_refusals(void)
{
    static struct smtp_owner owner;
    for (size_t i = 0; i < sizeof(smtp_cases) / sizeof(smtp_cases[0]); i++) {
        const struct smtp_case *c = &smtp_cases[i];
        for (size_t step = 0; step <= 1; step++) {
            struct smtp_owner *o = &owner;
            smtp_owner_start(o, c);
            smtp_owner_run(o, c->input, step);
            bool is_same = o->report_count == c->report_count && o->bad_reports == 0;
            for (size_t k = 0; is_same && k < c->report_count; k++) {
                const struct smtp_report *want = &c->reports[k];
                is_same = o->reports[k].reason == want->reason &&
                          strncmp(o->reports[k].text, want->text, strlen(want->text)) == 0;
            }
            if (c->out_contains != NULL && !out_contains(o, c->out_contains)) {
                is_same = false;
            }
            if (!is_same) {
                fprintf(stderr, "case \"%s\" (step %zu): %zu reports, %u bad:\n", c->name, step,
                        o->report_count, o->bad_reports);
                for (size_t k = 0; k < o->report_count; k++) {
                    fprintf(stderr, "  %d %s\n", (int)o->reports[k].reason, o->reports[k].text);
                }
                fprintf(stderr, "output:\n%.*s\n", (int)o->out_len, o->out);
            }
            CHECK(is_same);
            smtp_session_finish(&o->session);
        }
    }
}

/* Without a refused callback the session works as before. */
static void
test_smtp_without_callback(void)
{
    static const struct smtp_session_callbacks bare = {
        .rcpt = smtp_owner_rcpt,
        .txn_abort = smtp_owner_txn_abort,
    };
    static struct smtp_owner owner;
    struct smtp_owner *o = &owner;
    smtp_owner_start(o, &smtp_cases[1]);
    smtp_session_init(&o->session, &o->config, &bare, o, "192.0.2.1");
    smtp_owner_run(o, EHLO "FOO\r\nQUIT\r\n", 0);
    CHECK(o->report_count == 0);
    CHECK(out_contains(o, "500 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n"));
}

/* ---- IMAP ---------------------------------------------------------------------- */

static char scratch_buf[IMAP_LINE_BYTES_MAX_DEFAULT + IMAP_LITERAL_BYTES_MAX_DEFAULT];
static struct imap_node scratch_nodes[IMAP_PARSER_NODES_DEFAULT];

struct imap_owner {
    struct imap_session         session;
    struct imap_session_scratch scratch;
    bool                        is_lent;
    enum imap_command           commands[REPORTS_MAX];
    size_t                      command_count;
    unsigned                    overflows;
};

static struct imap_session_scratch *
imap_owner_acquire(void *owner)
{
    struct imap_owner *o = owner;
    CHECK(!o->is_lent);
    o->is_lent = true;
    return &o->scratch;
}

static void
imap_owner_release(void *owner, struct imap_session_scratch *scratch)
{
    struct imap_owner *o = owner;
    CHECK(o->is_lent && scratch == &o->scratch);
    o->is_lent = false;
}

static void
imap_owner_command_read(void *owner, enum imap_command command)
{
    struct imap_owner *o = owner;
    if (o->command_count == REPORTS_MAX) {
        o->overflows++;
        return;
    }
    o->commands[o->command_count++] = command;
}

static const struct imap_session_callbacks imap_owner_callbacks = {
    .scratch_acquire = imap_owner_acquire,
    .scratch_release = imap_owner_release,
    .command_read = imap_owner_command_read,
};

static struct imap_session_config imap_config;

/* Answer requests: alice/secret logs in; a mailbox command succeeds (SELECT
 * selects, IDLE idles), writing its tagged OK into nothing we check. */
static void
imap_owner_serve(struct imap_owner *o)
{
    struct imap_session *s = &o->session;
    for (unsigned round = 0; round < 16; round++) {
        struct span out = imap_session_output(s);
        imap_session_output_sent(s, out.len);
        switch (imap_session_take_request(s)) {
        case IMAP_REQUEST_NONE:
            return;
        case IMAP_REQUEST_AUTH: {
            bool ok = strcmp(imap_session_auth_user(s), "alice") == 0 &&
                      strcmp(imap_session_auth_password(s), "secret") == 0;
            imap_session_auth_done(s, ok, ok ? "alice@example.test" : NULL);
            break;
        }
        case IMAP_REQUEST_COMMAND: {
            enum imap_command command = imap_session_command(s)->command;
            imap_session_command_done(s, command == IMAP_CMD_SELECT ? IMAP_OUTCOME_SELECTED
                                         : command == IMAP_CMD_IDLE ? IMAP_OUTCOME_IDLE
                                                                    : IMAP_OUTCOME_STAY);
            break;
        }
        case IMAP_REQUEST_IDLE_DONE:
            imap_session_command_done(s, IMAP_OUTCOME_STAY);
            break;
        case IMAP_REQUEST_STARTTLS:
            imap_session_tls_started(s);
            break;
        case IMAP_REQUEST_APPEND_DATA:
            imap_session_append_data_done(s);
            break;
        }
    }
    CHECK(false);
}

struct imap_case {
    const char       *name;
    const char       *input;
    size_t            count;
    enum imap_command commands[8];
};

#define LOGIN "a LOGIN alice secret\r\n"

static const struct imap_case imap_cases[] = {
    { "answered by the session", "a CAPABILITY\r\nb NOOP\r\nc ID NIL\r\nd LOGOUT\r\n", 4,
      { IMAP_CMD_CAPABILITY, IMAP_CMD_NOOP, IMAP_CMD_ID, IMAP_CMD_LOGOUT } },
    { "refused ones count too", "a ENABLE UTF8=ACCEPT\r\nb SELECT INBOX\r\nc NAMESPACE\r\n", 3,
      { IMAP_CMD_ENABLE, IMAP_CMD_SELECT, IMAP_CMD_NAMESPACE } },
    { "unknown names, no name, bad arguments", "a FROB\r\nb\r\nc NOOP x\r\nd SORT\r\n", 4,
      { IMAP_CMD_UNKNOWN, IMAP_CMD_UNKNOWN, IMAP_CMD_NOOP, IMAP_CMD_SORT } },
    { "mailbox commands and IDLE; DONE is none",
      LOGIN "b SELECT INBOX\r\nc IDLE\r\nDONE\r\nd NOOP\r\ne FETCH 1 FLAGS\r\nf LOGOUT\r\n", 6,
      { IMAP_CMD_LOGIN, IMAP_CMD_SELECT, IMAP_CMD_IDLE, IMAP_CMD_NOOP, IMAP_CMD_FETCH,
        IMAP_CMD_LOGOUT } },
    { "a SASL response is no command",
      "a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nb NOOP\r\n", 2,
      { IMAP_CMD_AUTHENTICATE, IMAP_CMD_NOOP } },
    { "STARTTLS", "a STARTTLS\r\nb CAPABILITY\r\n", 2,
      { IMAP_CMD_STARTTLS, IMAP_CMD_CAPABILITY } },
    { "APPEND before login, literal refused", "a APPEND INBOX {5}\r\nb NOOP\r\n", 2,
      { IMAP_CMD_APPEND, IMAP_CMD_NOOP } },
    { "APPEND too big", LOGIN "b APPEND INBOX {999999999}\r\nc NOOP\r\n", 3,
      { IMAP_CMD_LOGIN, IMAP_CMD_APPEND, IMAP_CMD_NOOP } },
    { "APPEND stored", LOGIN "b APPEND INBOX {5}\r\nhello\r\n", 2,
      { IMAP_CMD_LOGIN, IMAP_CMD_APPEND } },
};

static void
imap_owner_run(struct imap_owner *o, const char *input, size_t len, size_t step)
{
    size_t at = 0;
    for (unsigned stalls = 0; at < len && stalls < 4;) {
        size_t piece = step == 0 || len - at < step ? len - at : step;
        size_t used = imap_session_feed(&o->session, input + at, piece);
        at += used;
        stalls = used == 0 ? stalls + 1 : 0;
        imap_owner_serve(o);
        if (imap_session_is_closing(&o->session)) {
            break;
        }
    }
    imap_owner_serve(o);
}

static void
imap_owner_start(struct imap_owner *o)
{
    memset(o, 0, sizeof(*o));
    o->scratch.buf = scratch_buf;
    o->scratch.buf_bytes = sizeof(scratch_buf);
    o->scratch.nodes = scratch_nodes;
    o->scratch.nodes_max = IMAP_PARSER_NODES_DEFAULT;
    imap_session_init(&o->session, &imap_config, &imap_owner_callbacks, o, true);
    imap_session_set_tls(&o->session, true, false);
}

static void
test_imap_commands(void)
{
    memset(&imap_config, 0, sizeof(imap_config));
    imap_config.hostname = "imap.test";
    imap_config.version = "0.1";
    imap_reader_config_default(&imap_config.reader, 1024 * 1024);
    imap_config.error_limit = IMAP_SESSION_ERROR_LIMIT_DEFAULT;
    static struct imap_owner owner;
    for (size_t i = 0; i < sizeof(imap_cases) / sizeof(imap_cases[0]); i++) {
        const struct imap_case *c = &imap_cases[i];
        for (size_t step = 0; step <= 1; step++) {
            struct imap_owner *o = &owner;
            imap_owner_start(o);
            imap_owner_run(o, c->input, strlen(c->input), step);
            bool is_same = o->command_count == c->count && o->overflows == 0;
            for (size_t k = 0; is_same && k < c->count; k++) {
                is_same = o->commands[k] == c->commands[k];
            }
            if (!is_same) {
                fprintf(stderr, "case \"%s\" (step %zu): %zu commands:", c->name, step,
                        o->command_count);
                for (size_t k = 0; k < o->command_count; k++) {
                    fprintf(stderr, " %s", imap_command_name(o->commands[k]));
                }
                fprintf(stderr, "\n");
            }
            CHECK(is_same);
            imap_session_finish(&o->session);
        }
    }
    /* A line past the reader's bound is one command, unknown. */
    static char long_line[IMAP_LINE_BYTES_MAX_DEFAULT + 64];
    memset(long_line, 'x', sizeof(long_line));
    memcpy(long_line, "a NOOP ", 7);
    memcpy(long_line + sizeof(long_line) - 2, "\r\n", 2);
    struct imap_owner *o = &owner;
    imap_owner_start(o);
    imap_owner_run(o, long_line, sizeof(long_line), 0);
    imap_owner_run(o, "b NOOP\r\n", 8, 0);
    CHECK(o->command_count == 2);
    CHECK(o->commands[0] == IMAP_CMD_UNKNOWN);
    CHECK(o->commands[1] == IMAP_CMD_NOOP);
    imap_session_finish(&o->session);
}

int
main(void)
{
    test_smtp_refusals();
    test_smtp_without_callback();
    test_imap_commands();
    UNIT_DONE();
}
