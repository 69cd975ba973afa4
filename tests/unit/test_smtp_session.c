/*
 * tests/unit/test_smtp_session.c - the SMTP session state machine, driven
 * the way its owner drives it.
 *
 * A fake owner answers every request at once: the spool file is an
 * in-memory buffer, the queue id is "TESTQID" and the clock is fixed, so
 * the spooled bytes are exact. Recipients are decided by a small table
 * (local part "unknown..." -> 550, domain remote.test -> 554, "temp" ->
 * 451, "badsyntax" -> 501, "noroom" -> 452, anything else accepted), and
 * txn_abort calls are counted and drop the spool file. Completions can be
 * made to fail (-ENOSPC on open, -EIO on write, 451 from delivery).
 *
 * Each table case is a client byte stream and the exact reply bytes after
 * the 220 banner. Every case runs whole, one byte at a time, split in two
 * at every byte boundary, whole with output drained only when the session
 * stalls on it, and in small pieces with the smallest body buffer the
 * session accepts; every run must give the same replies, the same spooled
 * files, the same counters and consume the same bytes. Further
 * tests cover the spooled bytes (trace headers, unstuffing, bare LF, BDAT),
 * every limit at max - 1, max and max + 1, pipelining, timeouts, shutdown,
 * output backpressure, DATA smuggling and the one-request-at-a-time rule.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/smtp/smtp_session.h"
#include "tests/unit/unit.h"

/* A string literal as pointer and length (embedded NULs included). */
#define S(s) (s), (sizeof(s) - 1)

#define HOST "mx.test"
#define CLIENT_IP "192.0.2.1"
#define QUEUE_ID "TESTQID"
#define NOW ((time_t)1700000000)
#define NOW_TEXT "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)"
#define BODY_BUFFER_BYTES 65536
#define SIZE_LIMIT 1000000

#define FAIL_OPEN 0x1u
#define FAIL_WRITE 0x2u
#define FAIL_DELIVER 0x4u

#define DELIVER_OK_LINE "250 2.0.0 Ok: queued as " QUEUE_ID
#define DELIVER_FAIL_LINE "451 4.3.0 Error: cannot store the message, try again later"

/* Client lines. */
#define C_EHLO "EHLO client.test\r\n"
#define C_HELO "HELO client.test\r\n"
#define C_MAIL "MAIL FROM:<alice@sender.test>\r\n"
#define C_RCPT "RCPT TO:<bob@local.test>\r\n"
#define C_TXN C_EHLO C_MAIL C_RCPT

/* Replies. */
#define BANNER "220 " HOST " ESMTP toaster\r\n"
#define R_EHLO_SIZE(size)                                                            \
    "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE " size "\r\n250-8BITMIME\r\n"        \
    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 DSN\r\n"
#define R_EHLO R_EHLO_SIZE("1000000")
#define R_HELO "250 " HOST "\r\n"
#define R_MAIL "250 2.1.0 Ok\r\n"
#define R_RCPT "250 2.1.5 Ok\r\n"
#define R_TXN R_EHLO R_MAIL R_RCPT
#define R_TXN100 R_EHLO_SIZE("100") R_MAIL R_RCPT
#define R_OK "250 2.0.0 Ok\r\n"
#define R_354 "354 End data with <CR><LF>.<CR><LF>\r\n"
#define R_QUEUED DELIVER_OK_LINE "\r\n"
#define R_BYE "221 2.0.0 Bye\r\n"
#define R_HELP                                                                       \
    "214-2.0.0 Commands supported:\r\n"                                              \
    "214-2.0.0   HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"         \
    "214 2.0.0 See RFC 5321\r\n"
#define R_VRFY "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n"
#define R_502 "502 5.5.1 Error: command not implemented\r\n"
#define R_500 "500 5.5.2 Error: command not recognized\r\n"
#define R_501 "501 5.5.4 Syntax error in parameters or arguments\r\n"
#define R_503_HELO "503 5.5.1 Error: send HELO/EHLO first\r\n"
#define R_503_NESTED "503 5.5.1 Error: nested MAIL command\r\n"
#define R_503_MAIL "503 5.5.1 Error: need MAIL command\r\n"
#define R_503_RCPT "503 5.5.1 Error: need RCPT command\r\n"
#define R_503_DATA_BDAT "503 5.5.1 Error: DATA after BDAT\r\n"
#define R_503_RCPT_BDAT "503 5.5.1 Error: RCPT after BDAT\r\n"
#define R_554_NORCPT "554 5.5.1 Error: no valid recipients\r\n"
#define R_451_OPEN "451 4.3.0 Error: cannot create queue file, try again later\r\n"
#define R_451_WRITE "451 4.3.0 Error: queue file write error\r\n"
#define R_451_DELIVER DELIVER_FAIL_LINE "\r\n"
#define R_552_BODY "552 5.3.4 Error: message file too big\r\n"
#define R_552_SIZE "552 5.3.4 Message size exceeds fixed limit\r\n"
#define R_550_BARE_LF "550 5.5.2 Error: bare <LF> received\r\n"
#define R_500_BARE_LF "500 5.5.2 Error: bare <LF> received\r\n"
#define R_TOO_LONG "500 5.5.6 Error: line too long\r\n"
#define R_452_RCPTS "452 4.5.3 Error: too many recipients\r\n"
#define R_421_ERRORS "421 4.7.0 " HOST " Error: too many errors\r\n"
#define R_421_JUNK "421 4.7.0 " HOST " Error: too many junk commands\r\n"
#define R_421_SHUTDOWN "421 4.3.2 " HOST " Service shutting down, closing transmission channel\r\n"
#define R_421_TIMEOUT "421 4.4.2 " HOST " Error: timeout exceeded\r\n"
#define R_BDAT_SYNTAX                                                                \
    "501 5.5.4 Syntax: BDAT count [LAST]\r\n"                                        \
    "421 4.7.0 " HOST " Error: cannot continue after BDAT syntax error\r\n"
#define R_BDAT_OK(n) "250 2.0.0 Ok: " n " octets received\r\n"

/* The trace headers the session writes for the usual transaction. */
#define TRACE_HEAD(from, helo, proto)                                                \
    "Return-Path: <" from ">\r\n"                                                    \
    "Received: from " helo " ([" CLIENT_IP "])\r\n"                                  \
    "\tby " HOST " (toaster) with " proto " id " QUEUE_ID
#define TRACE_FOR(rcpt) "\r\n\tfor <" rcpt ">"
#define TRACE_TAIL ";\r\n\t" NOW_TEXT "\r\n"
#define TRACE_ONE TRACE_HEAD("alice@sender.test", "client.test", "ESMTP") \
    TRACE_FOR("bob@local.test") TRACE_TAIL

#define X10 "xxxxxxxxxx"
#define X50 X10 X10 X10 X10 X10
#define X98 X50 X10 X10 X10 X10 "xxxxxxxx"

#define CHECK_LITERAL(got, got_len, literal)                                          \
    CHECK_BYTES((got), (got_len), (literal), sizeof(literal) - 1)

/* ---- a growable byte buffer (test code may allocate) -------------------- */

struct bytes {
    uint8_t *ptr;
    size_t   len;
    size_t   cap;
};

static void
bytes_append(struct bytes *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(b->ptr, cap);
        if (grown == NULL) {
            abort();
        }
        b->ptr = grown;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

static void
bytes_free(struct bytes *b)
{
    free(b->ptr);
    memset(b, 0, sizeof(*b));
}

static bool
bytes_equal(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static bool
bytes_contains(const struct bytes *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= b->len; i++) {
        if (memcmp(b->ptr + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- the fake owner ------------------------------------------------------- */

struct owner {
    struct smtp_session        session;
    struct smtp_session_config config;
    unsigned                   fail;          /* FAIL_* */
    bool                       is_lazy_drain; /* drain output only when the session stalls */
    uint8_t                   *body;          /* body_capacity bytes, an exact heap block */
    size_t                     body_capacity;
    struct bytes               out;           /* every reply byte, banner included */
    struct bytes               file;          /* the spool file being written */
    bool                       has_file;
    struct bytes               delivered;     /* every delivered file, one after another */
    struct smtp_txn            delivered_txn; /* the last DELIVER's transaction */
    unsigned                   open_count;
    unsigned                   write_count;
    unsigned                   deliver_count;  /* DELIVER requests */
    unsigned                   accepted_count; /* of those, answered 250 */
    unsigned                   abort_count;
    unsigned                   tls_starts;     /* STARTTLS requests served */
    unsigned                   auth_count;     /* AUTH requests served */
    unsigned                   rcpt_calls;
    unsigned                   violations;     /* request or feed contract broken */
    size_t                     consumed;       /* input bytes the session took */
    uint32_t                   last_notify;
    char                       last_orcpt[SMTP_LINE_BYTES_MAX];
    char                       last_rcpt[SMTP_ADDRESS_BYTES_MAX + 1];
};

#define VIOLATION_UNLESS(o, expr)                                                    \
    do {                                                                             \
        if (!(expr)) {                                                               \
            (o)->violations++;                                                       \
            (void)fprintf(stderr, "%s:%d: contract broken: %s\n", __FILE__,          \
                          __LINE__, #expr);                                          \
        }                                                                            \
    } while (0)

static bool
span_starts_with(struct span s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

static bool
span_ends_with(struct span s, const char *suffix)
{
    size_t n = strlen(suffix);
    return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

static enum smtp_rcpt_verdict
owner_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    struct owner *o = owner;
    const struct smtp_path *path = request->path;
    o->rcpt_calls++;
    o->last_notify = request->notify;
    (void)snprintf(o->last_rcpt, sizeof(o->last_rcpt), "%.*s", (int)path->mailbox.len,
                   path->mailbox.ptr);
    (void)snprintf(o->last_orcpt, sizeof(o->last_orcpt), "%.*s", (int)request->orcpt.len,
                   request->orcpt.len > 0 ? request->orcpt.ptr : "");
    if (span_starts_with(path->local_part, "unknown")) {
        return SMTP_RCPT_UNKNOWN_USER;
    }
    if (span_equals_nocase(path->domain, "remote.test")) {
        return SMTP_RCPT_RELAY_DENIED;
    }
    if (span_equals_nocase(path->local_part, "temp")) {
        return SMTP_RCPT_TEMPFAIL;
    }
    if (span_equals_nocase(path->local_part, "badsyntax")) {
        return SMTP_RCPT_BAD_SYNTAX;
    }
    if (span_equals_nocase(path->local_part, "noroom")) {
        return SMTP_RCPT_NO_RESOURCES;
    }
    return SMTP_RCPT_ACCEPT;
}

static void
owner_txn_abort(void *owner)
{
    struct owner *o = owner;
    o->abort_count++;
    o->has_file = false;
    o->file.len = 0;
}

/* alice may send as herself and as team@local.test. */
static bool
owner_sender_allowed(void *owner, const char *user, struct span mailbox)
{
    (void)owner;
    return strcmp(user, "alice@local.test") == 0 &&
           (span_equals_nocase(mailbox, "alice@local.test") ||
            span_equals_nocase(mailbox, "team@local.test"));
}

static const struct smtp_session_callbacks owner_callbacks = {
    .rcpt = owner_rcpt,
    .txn_abort = owner_txn_abort,
    .sender_allowed = owner_sender_allowed,
};

static struct smtp_session_config
config_default(void)
{
    return (struct smtp_session_config){
        .hostname = HOST,
        .message_size_limit = SIZE_LIMIT,
        .recipient_limit = SMTP_RCPT_DEFAULT,
        .error_limit = SMTP_ERRORS_DEFAULT,
        .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
        .reject_bare_lf = false,
    };
}

static void
owner_drain(struct owner *o)
{
    struct span out = smtp_session_output(&o->session);
    bytes_append(&o->out, out.ptr, out.len);
    smtp_session_output_sent(&o->session, out.len);
}

static void
owner_collect(struct owner *o)
{
    if (!o->is_lazy_drain) {
        owner_drain(o);
    }
}

static struct owner *
owner_new(const struct smtp_session_config *config, unsigned fail, bool is_lazy_drain)
{
    struct owner *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        abort();
    }
    o->config = config != NULL ? *config : config_default();
    o->fail = fail;
    o->is_lazy_drain = is_lazy_drain;
    o->body_capacity = BODY_BUFFER_BYTES;
    o->body = malloc(o->body_capacity);
    if (o->body == NULL) {
        abort();
    }
    smtp_session_init(&o->session, &o->config, &owner_callbacks, o, CLIENT_IP);
    owner_collect(o);
    return o;
}

/* The smallest body buffer the session accepts, so that bodies of a few
 * KiB need several writes. Only before the first spool file is opened. */
static void
owner_use_small_body(struct owner *o)
{
    free(o->body);
    o->body_capacity = 2 * SMTP_LINE_BYTES_MAX;
    o->body = malloc(o->body_capacity);
    if (o->body == NULL) {
        abort();
    }
}

static void
owner_release(struct owner *o)
{
    CHECK(o->violations == 0);
    bytes_free(&o->out);
    bytes_free(&o->file);
    bytes_free(&o->delivered);
    free(o->body);
    free(o);
}

/* Session end as the owner sees it: finish, then nothing may remain. */
static void
owner_free(struct owner *o)
{
    unsigned aborts = o->abort_count;
    smtp_session_finish(&o->session);
    VIOLATION_UNLESS(o, o->abort_count == aborts + 1);
    VIOLATION_UNLESS(o, !o->has_file);
    owner_release(o);
}

/* Perform every request the session has, one at a time, as the reactor
 * glue does, checking the one-request rule on the way. Returns how many. */
static unsigned
owner_serve(struct owner *o)
{
    struct smtp_session *s = &o->session;
    for (unsigned round = 0; round < 16; round++) {
        enum smtp_request what = smtp_session_take_request(s);
        if (what == SMTP_REQUEST_NONE) {
            VIOLATION_UNLESS(o, s->request == SMTP_REQUEST_NONE);
            return round;
        }
        /* While one request is out: no second one, and no input taken. */
        VIOLATION_UNLESS(o, smtp_session_take_request(s) == SMTP_REQUEST_NONE);
        VIOLATION_UNLESS(o, !smtp_session_wants_input(s));
        VIOLATION_UNLESS(o, smtp_session_feed(s, (const uint8_t *)"X", 1) == 0);
        switch (what) {
        case SMTP_REQUEST_NONE:
            break;
        case SMTP_REQUEST_SPOOL_OPEN:
            o->open_count++;
            VIOLATION_UNLESS(o, s->state == SMTP_STATE_SPOOL_OPEN);
            VIOLATION_UNLESS(o, !o->has_file);
            if (o->fail & FAIL_OPEN) {
                smtp_session_spool_opened(s, -ENOSPC, NULL, 0, NULL, NOW);
            } else {
                o->has_file = true;
                o->file.len = 0;
                smtp_session_spool_opened(s, 0, o->body, o->body_capacity, QUEUE_ID, NOW);
            }
            break;
        case SMTP_REQUEST_SPOOL_WRITE: {
            o->write_count++;
            struct span body = smtp_session_body(s);
            VIOLATION_UNLESS(o, body.len > 0);
            VIOLATION_UNLESS(o, body.len <= o->body_capacity);
            VIOLATION_UNLESS(o, (const uint8_t *)body.ptr == o->body);
            VIOLATION_UNLESS(o, o->has_file);
            if (o->fail & FAIL_WRITE) {
                smtp_session_spool_written(s, -EIO);
            } else {
                bytes_append(&o->file, body.ptr, body.len);
                smtp_session_spool_written(s, 0);
            }
            break;
        }
        case SMTP_REQUEST_AUTH: {
            o->auth_count++;
            bool is_ok = strcmp(smtp_session_auth_user(s), "alice@local.test") == 0 &&
                         strcmp(smtp_session_auth_password(s), "secret") == 0;
            smtp_session_auth_done(s, is_ok, is_ok ? "alice@local.test" : NULL);
            VIOLATION_UNLESS(o, s->auth_password[0] == '\0' && s->auth_user[0] == '\0');
            break;
        }
        case SMTP_REQUEST_STARTTLS:
            /* The reply is queued before TLS begins beneath. */
            VIOLATION_UNLESS(o, span_ends_with(smtp_session_output(s),
                                               "220 2.0.0 Ready to start TLS\r\n"));
            o->tls_starts++;
            smtp_session_tls_started(s);
            smtp_session_tls_describe(s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
            break;
        case SMTP_REQUEST_DELIVER:
            o->deliver_count++;
            VIOLATION_UNLESS(o, s->state == SMTP_STATE_DELIVER);
            VIOLATION_UNLESS(o, o->has_file);
            VIOLATION_UNLESS(o, s->txn.body_bytes == o->file.len);
            VIOLATION_UNLESS(o, s->txn.rcpt_count > 0);
            bytes_append(&o->delivered, o->file.ptr, o->file.len);
            o->delivered_txn = s->txn;
            /* The message is handed over: the spool file is not ours now. */
            o->has_file = false;
            o->file.len = 0;
            if (o->fail & FAIL_DELIVER) {
                smtp_session_delivered(s, DELIVER_FAIL_LINE);
            } else {
                o->accepted_count++;
                smtp_session_delivered(s, DELIVER_OK_LINE);
            }
            break;
        }
        owner_collect(o);
    }
    VIOLATION_UNLESS(o, false); /* requests without end */
    return 16;
}

static size_t
chunk_end(size_t pos, size_t len, size_t first_cut, size_t step)
{
    if (pos < first_cut) {
        return first_cut < len ? first_cut : len;
    }
    return len - pos <= step ? len : pos + step;
}

/* Feed in[0..len): first up to first_cut, then step bytes at a time. Each
 * piece is an exact-size heap copy (so ASan sees a read past it) and is
 * offered again until it is used up or the session closes. */
static void
owner_drive(struct owner *o, const uint8_t *in, size_t len, size_t first_cut, size_t step)
{
    struct smtp_session *s = &o->session;
    size_t pos = 0;
    while (pos < len && !smtp_session_is_closing(s)) {
        size_t end = chunk_end(pos, len, first_cut, step);
        size_t n = end - pos;
        uint8_t *chunk = malloc(n);
        if (chunk == NULL) {
            abort();
        }
        memcpy(chunk, in + pos, n);
        size_t off = 0;
        unsigned stalls = 0;
        while (off < n && !smtp_session_is_closing(s)) {
            size_t used = smtp_session_feed(s, chunk + off, n - off);
            VIOLATION_UNLESS(o, used <= n - off);
            if (used > n - off) {
                break;
            }
            off += used;
            /* A feed may end with a request and no byte taken: the body
             * buffer filled up with bytes the decoder held back. */
            unsigned served = owner_serve(o);
            owner_collect(o);
            if (used > 0 || served > 0) {
                stalls = 0;
                continue;
            }
            /* Nothing taken and no request: only unsent output may hold
             * the session back. */
            if (!smtp_session_wants_input(s) && !smtp_session_is_closing(s)) {
                VIOLATION_UNLESS(o, smtp_session_output(s).len > SMTP_SEND_HIGH_BYTES);
                owner_drain(o);
            }
            if (++stalls > 2) {
                VIOLATION_UNLESS(o, false);
                break;
            }
        }
        free(chunk);
        pos += off;
        if (off < n) {
            break;
        }
    }
    owner_drain(o);
    o->consumed += pos;
}

static struct owner *
owner_run(const struct smtp_session_config *config, unsigned fail, const void *in, size_t len)
{
    struct owner *o = owner_new(config, fail, false);
    owner_drive(o, in, len, len, len);
    return o;
}

/* The replies after the banner. */
static struct span
owner_replies(const struct owner *o)
{
    size_t banner = sizeof(BANNER) - 1;
    if (o->out.len < banner || memcmp(o->out.ptr, BANNER, banner) != 0) {
        return span_make("<no banner>", 11);
    }
    return span_make((const char *)o->out.ptr + banner, o->out.len - banner);
}

#define CHECK_REPLIES(o, want)                                                       \
    do {                                                                             \
        struct span replies_ = owner_replies(o);                                     \
        CHECK_BYTES(replies_.ptr, replies_.len, (want), strlen(want));               \
    } while (0)

/* ---- table of transcripts -------------------------------------------------- */

static const struct smtp_session_config config_bare_lf = {
    .hostname = HOST, .message_size_limit = SIZE_LIMIT, .recipient_limit = SMTP_RCPT_DEFAULT,
    .error_limit = SMTP_ERRORS_DEFAULT, .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
    .reject_bare_lf = true,
};
static const struct smtp_session_config config_size100 = {
    .hostname = HOST, .message_size_limit = 100, .recipient_limit = SMTP_RCPT_DEFAULT,
    .error_limit = SMTP_ERRORS_DEFAULT, .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
};
static const struct smtp_session_config config_rcpt3 = {
    .hostname = HOST, .message_size_limit = SIZE_LIMIT, .recipient_limit = 3,
    .error_limit = SMTP_ERRORS_DEFAULT, .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
};
static const struct smtp_session_config config_errors3 = {
    .hostname = HOST, .message_size_limit = SIZE_LIMIT, .recipient_limit = 3,
    .error_limit = 3, .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
};
static const struct smtp_session_config config_junk3 = {
    .hostname = HOST, .message_size_limit = SIZE_LIMIT, .recipient_limit = SMTP_RCPT_DEFAULT,
    .error_limit = SMTP_ERRORS_DEFAULT, .junk_command_limit = 3,
};

struct session_case {
    const char *name;
    const char *in;
    size_t      in_len;
    const char *want;    /* every reply after the banner */
    size_t      want_len;
    bool        is_closing;
    const struct smtp_session_config *config; /* NULL: config_default() */
    unsigned    fail;
};

static const struct session_case session_cases[] = {
    /* HELO and EHLO */
    { "helo", S(C_HELO), S(R_HELO), false, NULL, 0 },
    { "helo lower case", S("helo client.test\r\n"), S(R_HELO), false, NULL, 0 },
    { "helo without argument", S("HELO\r\n"), S("501 5.5.4 Syntax: HELO hostname\r\n"),
      false, NULL, 0 },
    { "ehlo", S(C_EHLO), S(R_EHLO), false, NULL, 0 },
    { "ehlo advertises the configured size", S(C_EHLO), S(R_EHLO_SIZE("100")), false,
      &config_size100, 0 },
    { "ehlo without argument", S("EHLO\r\n"), S("501 5.5.4 Syntax: EHLO hostname\r\n"), false,
      NULL, 0 },
    { "ehlo twice resets the transaction",
      S(C_EHLO C_MAIL C_RCPT C_EHLO C_MAIL "DATA\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_EHLO R_MAIL R_554_NORCPT), false, NULL, 0 },
    { "helo inside a transaction resets it", S(C_TXN C_HELO "RCPT TO:<x@local.test>\r\n"),
      S(R_TXN R_HELO R_503_MAIL), false, NULL, 0 },

    /* MAIL */
    { "mail", S(C_EHLO C_MAIL), S(R_EHLO R_MAIL), false, NULL, 0 },
    { "mail null sender", S(C_EHLO "MAIL FROM:<>\r\n"), S(R_EHLO R_MAIL), false, NULL, 0 },
    { "mail space after colon", S(C_EHLO "MAIL FROM: <alice@sender.test>\r\n"),
      S(R_EHLO R_MAIL), false, NULL, 0 },
    { "mail after helo", S(C_HELO C_MAIL), S(R_HELO R_MAIL), false, NULL, 0 },
    { "mail size at the limit", S(C_EHLO "MAIL FROM:<a@b.test> SIZE=1000000\r\n"),
      S(R_EHLO R_MAIL), false, NULL, 0 },
    { "mail size over the limit",
      S(C_EHLO "MAIL FROM:<a@b.test> SIZE=1000001\r\n" C_MAIL),
      S(R_EHLO R_552_SIZE R_MAIL), false, NULL, 0 },
    { "mail size bad",
      S(C_EHLO "MAIL FROM:<a@b.test> SIZE=12x\r\nMAIL FROM:<a@b.test> SIZE\r\n"
            "MAIL FROM:<a@b.test> SIZE=99999999999999999999\r\n"
            "MAIL FROM:<a@b.test> SIZE=123456789012345678901\r\n"),
      S(R_EHLO "501 5.5.4 Bad SIZE parameter\r\n501 5.5.4 Bad SIZE parameter\r\n"
               "501 5.5.4 Bad SIZE parameter\r\n501 5.5.4 Bad SIZE parameter\r\n"),
      false, NULL, 0 },
    { "mail body 7bit", S(C_EHLO "MAIL FROM:<a@b.test> BODY=7BIT\r\n"), S(R_EHLO R_MAIL),
      false, NULL, 0 },
    { "mail body 8bitmime", S(C_EHLO "MAIL FROM:<a@b.test> body=8bitmime\r\n"),
      S(R_EHLO R_MAIL), false, NULL, 0 },
    { "mail body binarymime",
      S(C_EHLO "MAIL FROM:<a@b.test> BODY=BINARYMIME\r\nMAIL FROM:<a@b.test> BODY\r\n"),
      S(R_EHLO "555 5.5.4 Unsupported BODY parameter\r\n"
               "555 5.5.4 Unsupported BODY parameter\r\n"),
      false, NULL, 0 },
    { "mail smtputf8", S(C_EHLO "MAIL FROM:<a@b.test> SMTPUTF8\r\n"), S(R_EHLO R_MAIL), false,
      NULL, 0 },
    { "mail smtputf8 with a value", S(C_EHLO "MAIL FROM:<a@b.test> SMTPUTF8=yes\r\n"),
      S(R_EHLO "501 5.5.4 SMTPUTF8 takes no value\r\n"), false, NULL, 0 },
    { "mail utf8 sender needs smtputf8",
      S(C_EHLO "MAIL FROM:<j\xc3\xb6rg@sender.test>\r\n"
               "MAIL FROM:<j\xc3\xb6rg@sender.test> SMTPUTF8\r\n"),
      S(R_EHLO "553 5.6.7 Error: non-ASCII address needs SMTPUTF8\r\n" R_MAIL), false, NULL,
      0 },
    { "mail ret",
      S(C_EHLO "MAIL FROM:<a@b.test> RET=FULL\r\nRSET\r\nMAIL FROM:<a@b.test> RET=hdrs\r\n"
               "RSET\r\nMAIL FROM:<a@b.test> RET=ALL\r\nMAIL FROM:<a@b.test> RET\r\n"),
      S(R_EHLO R_MAIL R_OK R_MAIL R_OK "501 5.5.4 Bad RET parameter\r\n"
               "501 5.5.4 Bad RET parameter\r\n"),
      false, NULL, 0 },
    { "mail envid",
      S(C_EHLO "MAIL FROM:<a@b.test> ENVID=QQ+2B1\r\nRSET\r\n"
               "MAIL FROM:<a@b.test> ENVID=bad+0D\r\nMAIL FROM:<a@b.test> ENVID=x+4\r\n"
               "MAIL FROM:<a@b.test> ENVID\r\n"),
      S(R_EHLO R_MAIL R_OK "501 5.5.4 Bad ENVID parameter\r\n501 5.5.4 Bad ENVID parameter\r\n"
               "501 5.5.4 Bad ENVID parameter\r\n"),
      false, NULL, 0 },
    { "mail envid length",
      S(C_EHLO "MAIL FROM:<a@b.test> ENVID=" X50 X50 "\r\nRSET\r\n"
               "MAIL FROM:<a@b.test> ENVID=" X50 X50 "x\r\n"),
      S(R_EHLO R_MAIL R_OK "501 5.5.4 Bad ENVID parameter\r\n"), false, NULL, 0 },
    { "mail unknown parameter", S(C_EHLO "MAIL FROM:<a@b.test> XFOO=1\r\n"),
      S(R_EHLO "555 5.5.4 Unsupported option: XFOO\r\n"), false, NULL, 0 },
    { "mail syntax", S(C_EHLO "MAIL TO:<a@b.test>\r\nMAIL\r\n"),
      S(R_EHLO "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
               "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
      false, NULL, 0 },
    { "mail bad path", S(C_EHLO "MAIL FROM:<a b@c>\r\nMAIL FROM:<a@>\r\n"),
      S(R_EHLO "501 5.1.7 Bad sender address syntax\r\n501 5.1.7 Bad sender address syntax\r\n"),
      false, NULL, 0 },

    /* RCPT and the recipient verdicts */
    { "rcpt accept", S(C_TXN), S(R_TXN), false, NULL, 0 },
    { "rcpt unknown user", S(C_EHLO C_MAIL "RCPT TO:<unknown.u@local.test>\r\n"),
      S(R_EHLO R_MAIL "550 5.1.1 <unknown.u@local.test>: Recipient address rejected: "
                      "User unknown in local recipient table\r\n"),
      false, NULL, 0 },
    { "rcpt relay denied", S(C_EHLO C_MAIL "RCPT TO:<bob@remote.test>\r\n"),
      S(R_EHLO R_MAIL "554 5.7.1 <bob@remote.test>: Relay access denied\r\n"), false, NULL, 0 },
    { "rcpt tempfail", S(C_EHLO C_MAIL "RCPT TO:<temp@local.test>\r\n"),
      S(R_EHLO R_MAIL "451 4.3.0 <temp@local.test>: Temporary lookup failure\r\n"), false,
      NULL, 0 },
    { "rcpt bad syntax verdict", S(C_EHLO C_MAIL "RCPT TO:<badsyntax@local.test>\r\n"),
      S(R_EHLO R_MAIL "501 5.1.3 Bad recipient address syntax\r\n"), false, NULL, 0 },
    { "rcpt no resources", S(C_EHLO C_MAIL "RCPT TO:<noroom@local.test>\r\n"),
      S(R_EHLO R_MAIL "452 4.3.1 Insufficient system resources\r\n"), false, NULL, 0 },
    { "rcpt postmaster", S(C_EHLO C_MAIL "RCPT TO:<Postmaster>\r\n"), S(R_EHLO R_MAIL R_RCPT),
      false, NULL, 0 },
    { "rcpt null path", S(C_EHLO C_MAIL "RCPT TO:<>\r\n"),
      S(R_EHLO R_MAIL "501 5.1.3 Bad recipient address syntax\r\n"), false, NULL, 0 },
    { "rcpt syntax", S(C_EHLO C_MAIL "RCPT FROM:<bob@local.test>\r\n"),
      S(R_EHLO R_MAIL "501 5.5.4 Syntax: RCPT TO:<address>\r\n"), false, NULL, 0 },
    { "rcpt notify",
      S(C_EHLO C_MAIL "RCPT TO:<a@local.test> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
                      "RCPT TO:<b@local.test> NOTIFY=never\r\n"
                      "RCPT TO:<c@local.test> NOTIFY=NEVER,DELAY\r\n"
                      "RCPT TO:<d@local.test> NOTIFY=SOMETIMES\r\n"
                      "RCPT TO:<e@local.test> NOTIFY\r\n"
                      "RCPT TO:<f@local.test> NOTIFY=SUCCESS,\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_RCPT "501 5.5.4 Bad NOTIFY parameter\r\n"
                                   "501 5.5.4 Bad NOTIFY parameter\r\n"
                                   "501 5.5.4 Bad NOTIFY parameter\r\n"
                                   "501 5.5.4 Bad NOTIFY parameter\r\n"),
      false, NULL, 0 },
    { "rcpt orcpt",
      S(C_EHLO C_MAIL "RCPT TO:<a@local.test> ORCPT=rfc822;a+40local.test\r\n"
                      "RCPT TO:<b@local.test> ORCPT=rfc822\r\n"
                      "RCPT TO:<c@local.test> ORCPT=;c\r\n"
                      "RCPT TO:<d@local.test> ORCPT=rfc822;d+0A\r\n"
                      "RCPT TO:<e@local.test> ORCPT\r\n"
                      "RCPT TO:<f@local.test> ORCPT=rfc822;\r\n"),
      S(R_EHLO R_MAIL R_RCPT "501 5.5.4 Bad ORCPT parameter\r\n"
                            "501 5.5.4 Bad ORCPT parameter\r\n"
                            "501 5.5.4 Bad ORCPT parameter\r\n"
                            "501 5.5.4 Bad ORCPT parameter\r\n"
                            "501 5.5.4 Bad ORCPT parameter\r\n"),
      false, NULL, 0 },
    { "rcpt unknown parameter", S(C_EHLO C_MAIL "RCPT TO:<a@local.test> XFOO\r\n"),
      S(R_EHLO R_MAIL "555 5.5.4 Unsupported option: XFOO\r\n"), false, NULL, 0 },
    { "rcpt utf8 needs smtputf8",
      S(C_EHLO C_MAIL "RCPT TO:<j\xc3\xb6rg@local.test>\r\nRSET\r\n"
                      "MAIL FROM:<a@b.test> SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@local.test>\r\n"),
      S(R_EHLO R_MAIL "553 5.6.7 Error: non-ASCII address needs SMTPUTF8\r\n" R_OK R_MAIL
                      R_RCPT),
      false, NULL, 0 },
    { "rcpt limit minus one", S(C_EHLO C_MAIL "RCPT TO:<a@l.test>\r\nRCPT TO:<b@l.test>\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_RCPT), false, &config_rcpt3, 0 },
    { "rcpt limit",
      S(C_EHLO C_MAIL "RCPT TO:<a@l.test>\r\nRCPT TO:<b@l.test>\r\nRCPT TO:<c@l.test>\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_RCPT R_RCPT), false, &config_rcpt3, 0 },
    { "rcpt limit plus one",
      S(C_EHLO C_MAIL "RCPT TO:<a@l.test>\r\nRCPT TO:<b@l.test>\r\nRCPT TO:<c@l.test>\r\n"
                      "RCPT TO:<d@l.test>\r\nDATA\r\nhi\r\n.\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_RCPT R_RCPT R_452_RCPTS R_354 R_QUEUED), false, &config_rcpt3,
      0 },
    { "rcpt limit is no peer error",
      S(C_EHLO C_MAIL "RCPT TO:<a@l.test>\r\nRCPT TO:<b@l.test>\r\nRCPT TO:<c@l.test>\r\n"
                      "RCPT TO:<d@l.test>\r\nRCPT TO:<e@l.test>\r\nRCPT TO:<f@l.test>\r\n"
                      "NOOP\r\n"),
      S(R_EHLO R_MAIL R_RCPT R_RCPT R_RCPT R_452_RCPTS R_452_RCPTS R_452_RCPTS R_OK), false,
      &config_errors3, 0 },

    /* DATA */
    { "data", S(C_TXN "DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n"), S(R_TXN R_354 R_QUEUED),
      false, NULL, 0 },
    { "data twice in one session",
      S(C_TXN "DATA\r\none\r\n.\r\n" C_MAIL C_RCPT "DATA\r\ntwo\r\n.\r\nQUIT\r\n"),
      S(R_TXN R_354 R_QUEUED R_MAIL R_RCPT R_354 R_QUEUED R_BYE), true, NULL, 0 },
    { "data with an argument", S(C_TXN "DATA now\r\n"), S(R_TXN R_501), false, NULL, 0 },
    { "data without valid recipient",
      S(C_EHLO C_MAIL "RCPT TO:<unknown@local.test>\r\nDATA\r\n"),
      S(R_EHLO R_MAIL "550 5.1.1 <unknown@local.test>: Recipient address rejected: "
                      "User unknown in local recipient table\r\n" R_554_NORCPT),
      false, NULL, 0 },
    { "data without rcpt", S(C_EHLO C_MAIL "DATA\r\n"), S(R_EHLO R_MAIL R_554_NORCPT), false,
      NULL, 0 },
    { "data without mail", S(C_EHLO "DATA\r\n"), S(R_EHLO R_503_RCPT), false, NULL, 0 },
    { "data empty body", S(C_TXN "DATA\r\n.\r\nNOOP\r\n"), S(R_TXN R_354 R_QUEUED R_OK), false,
      NULL, 0 },

    /* BDAT */
    { "bdat chunks", S(C_TXN "BDAT 5\r\nhelloBDAT 6 LAST\r\n world"),
      S(R_TXN R_BDAT_OK("5") R_QUEUED), false, NULL, 0 },
    { "bdat zero last after a chunk", S(C_TXN "BDAT 5\r\nhelloBDAT 0 LAST\r\nNOOP\r\n"),
      S(R_TXN R_BDAT_OK("5") R_QUEUED R_OK), false, NULL, 0 },
    { "bdat zero last only", S(C_TXN "BDAT 0 LAST\r\nNOOP\r\n"), S(R_TXN R_QUEUED R_OK), false,
      NULL, 0 },
    { "bdat zero chunk first", S(C_TXN "BDAT 0\r\nBDAT 3 LAST\r\nabc"),
      S(R_TXN R_BDAT_OK("0") R_QUEUED), false, NULL, 0 },
    { "bdat last keyword case", S(C_TXN "bdat 3 last\r\nabc"), S(R_TXN R_QUEUED), false, NULL,
      0 },
    { "bdat chunk holds command text",
      S(C_TXN "BDAT 12\r\nQUIT\r\nRSET\r\nBDAT 6 LAST\r\nDATA\r\nNOOP\r\n"),
      S(R_TXN R_BDAT_OK("12") R_QUEUED R_OK), false, NULL, 0 },
    { "bdat before mail", S(C_EHLO "BDAT 4\r\nNOOPNOOP\r\n" C_MAIL),
      S(R_EHLO R_503_MAIL R_OK R_MAIL), false, NULL, 0 },
    { "bdat before helo", S("BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n" C_MAIL),
      S(R_503_MAIL R_OK R_503_HELO), false, NULL, 0 },
    { "bdat without valid recipient",
      S(C_EHLO C_MAIL "RCPT TO:<unknown@local.test>\r\nBDAT 4\r\nRCPT" C_RCPT
            "BDAT 2\r\nhiBDAT 1 LAST\r\n!"),
      S(R_EHLO R_MAIL "550 5.1.1 <unknown@local.test>: Recipient address rejected: "
                      "User unknown in local recipient table\r\n" R_554_NORCPT R_RCPT
                      R_BDAT_OK("2") R_QUEUED),
      false, NULL, 0 },
    { "bdat refused chunk is not counted",
      S(C_EHLO "BDAT 7\r\n1234567" C_MAIL C_RCPT "BDAT 2\r\nhiBDAT 0 LAST\r\n"),
      S(R_EHLO R_503_MAIL R_MAIL R_RCPT R_BDAT_OK("2") R_QUEUED), false, NULL, 0 },
    { "bdat refused chunk does not count against the size",
      S(C_EHLO "BDAT 80\r\n" X50 X10 X10 X10 C_MAIL C_RCPT "BDAT 50 LAST\r\n" X50),
      S(R_EHLO_SIZE("100") R_503_MAIL R_MAIL R_RCPT R_QUEUED), false, &config_size100, 0 },
    { "data after bdat", S(C_TXN "BDAT 3\r\nabcDATA\r\nBDAT 1 LAST\r\nx"),
      S(R_TXN R_BDAT_OK("3") R_503_DATA_BDAT R_QUEUED), false, NULL, 0 },
    { "rcpt and mail after bdat",
      S(C_TXN "BDAT 3\r\nabc" C_RCPT C_MAIL "NOOP\r\nBDAT 1 LAST\r\nx"),
      S(R_TXN R_BDAT_OK("3") R_503_RCPT_BDAT R_503_NESTED R_OK R_QUEUED), false, NULL, 0 },
    { "rset between chunks", S(C_TXN "BDAT 3\r\nabcRSET\r\nBDAT 1\r\nxNOOP\r\n"),
      S(R_TXN R_BDAT_OK("3") R_OK R_503_MAIL R_OK), false, NULL, 0 },
    { "quit between chunks", S(C_TXN "BDAT 3\r\nabcQUIT\r\n"), S(R_TXN R_BDAT_OK("3") R_BYE),
      true, NULL, 0 },
    { "bdat bad size", S(C_TXN "BDAT x\r\nNOOP\r\n"), S(R_TXN R_BDAT_SYNTAX), true, NULL, 0 },
    { "bdat no size", S(C_EHLO "BDAT\r\nNOOP\r\n"), S(R_EHLO R_BDAT_SYNTAX), true, NULL, 0 },
    { "bdat bad keyword", S(C_TXN "BDAT 5 LAS\r\nhello"), S(R_TXN R_BDAT_SYNTAX), true, NULL,
      0 },
    { "bdat negative", S(C_TXN "BDAT -1\r\n"), S(R_TXN R_BDAT_SYNTAX), true, NULL, 0 },
    { "bdat size overflow", S(C_TXN "BDAT 99999999999999999999999\r\n"),
      S(R_TXN R_BDAT_SYNTAX), true, NULL, 0 },

    /* The other verbs */
    { "rset", S(C_TXN "RSET\r\n" C_MAIL), S(R_TXN R_OK R_MAIL), false, NULL, 0 },
    { "rset before helo", S("RSET\r\n" C_MAIL), S(R_OK R_503_HELO), false, NULL, 0 },
    { "rset with argument", S(C_EHLO "RSET x\r\n"), S(R_EHLO R_501), false, NULL, 0 },
    { "noop", S("NOOP\r\nNOOP with words\r\n"), S(R_OK R_OK), false, NULL, 0 },
    { "quit", S("QUIT\r\nNOOP\r\n"), S(R_BYE), true, NULL, 0 },
    { "quit in a transaction", S(C_TXN "QUIT\r\n"), S(R_TXN R_BYE), true, NULL, 0 },
    { "quit with argument", S("QUIT now\r\n"), S(R_501), false, NULL, 0 },
    { "vrfy", S("VRFY bob\r\n"), S(R_VRFY), false, NULL, 0 },
    { "vrfy without argument", S("VRFY\r\n"), S(R_501), false, NULL, 0 },
    { "expn", S("EXPN staff\r\n"), S(R_502), false, NULL, 0 },
    { "help", S("HELP\r\nHELP MAIL\r\n"), S(R_HELP R_HELP), false, NULL, 0 },
    { "starttls", S("STARTTLS\r\n"), S(R_502), false, NULL, 0 },
    { "auth", S(C_EHLO "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"), S(R_EHLO "503 5.5.1 Error: authentication not enabled\r\n"), false, NULL, 0 },
    { "unknown verb", S("FOO bar\r\nMAILFROM:<a@b.test>\r\n"), S(R_500 R_500), false, NULL, 0 },
    { "empty line", S("\r\n"), S(R_500), false, NULL, 0 },
    { "nul byte", S("NO\0OP\r\n"), S(R_500), false, NULL, 0 },
    { "bare lf ends a command", S("NOOP\nNOOP\r\n"), S(R_OK R_OK), false, NULL, 0 },
    { "bare lf command refused", S("NOOP\nNOOP\r\n"), S(R_500_BARE_LF R_OK), false,
      &config_bare_lf, 0 },
    { "input after the last line is kept", S("NOOP\r\nNOO"), S(R_OK), false, NULL, 0 },

    /* Sequence errors */
    { "mail before helo", S(C_MAIL C_EHLO C_MAIL), S(R_503_HELO R_EHLO R_MAIL), false, NULL,
      0 },
    { "nested mail", S(C_EHLO C_MAIL C_MAIL), S(R_EHLO R_MAIL R_503_NESTED), false, NULL, 0 },
    { "rcpt before mail", S(C_EHLO C_RCPT), S(R_EHLO R_503_MAIL), false, NULL, 0 },
    { "rcpt before helo", S(C_RCPT), S(R_503_MAIL), false, NULL, 0 },
    { "data before helo", S("DATA\r\n"), S(R_503_RCPT), false, NULL, 0 },

    /* Failing completions */
    { "spool open fails for data",
      S(C_TXN "DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"),
      S(R_TXN R_451_OPEN R_500 R_500 R_500 R_500 R_BYE), true, NULL, FAIL_OPEN },
    { "spool open fails for bdat last", S(C_TXN "BDAT 5 LAST\r\nhelloNOOP\r\n" C_MAIL),
      S(R_TXN R_451_WRITE R_OK R_MAIL), false, NULL, FAIL_OPEN },
    { "spool open fails for bdat chunks",
      S(C_TXN "BDAT 2\r\nhiBDAT 1\r\n!BDAT 1 LAST\r\nx" C_MAIL),
      S(R_TXN R_451_WRITE R_451_WRITE R_451_WRITE R_MAIL), false, NULL, FAIL_OPEN },
    { "spool write fails for data", S(C_TXN "DATA\r\nhello\r\n.\r\n" C_MAIL),
      S(R_TXN R_354 R_451_WRITE R_MAIL), false, NULL, FAIL_WRITE },
    { "spool write fails for bdat", S(C_TXN "BDAT 5 LAST\r\nhello" C_MAIL),
      S(R_TXN R_451_WRITE R_MAIL), false, NULL, FAIL_WRITE },
    { "delivery fails for data", S(C_TXN "DATA\r\nhello\r\n.\r\n" C_MAIL),
      S(R_TXN R_354 R_451_DELIVER R_MAIL), false, NULL, FAIL_DELIVER },
    { "delivery fails for bdat", S(C_TXN "BDAT 5 LAST\r\nhello" C_MAIL),
      S(R_TXN R_451_DELIVER R_MAIL), false, NULL, FAIL_DELIVER },

    /* Bare LF in the body */
    { "bare lf in data refused", S(C_TXN "DATA\r\na\nb\r\n.\r\n" C_MAIL),
      S(R_TXN R_354 R_550_BARE_LF R_MAIL), false, &config_bare_lf, 0 },
    { "bare lf in bdat refused", S(C_TXN "BDAT 4 LAST\r\na\nb\n" C_MAIL),
      S(R_TXN R_550_BARE_LF R_MAIL), false, &config_bare_lf, 0 },
    { "crlf body accepted with the bare lf policy", S(C_TXN "DATA\r\na\r\nb\r\n.\r\n"),
      S(R_TXN R_354 R_QUEUED), false, &config_bare_lf, 0 },

    /* Message size */
    { "data size at the limit", S(C_TXN "DATA\r\n" X98 "\r\n.\r\n"), S(R_TXN100 R_354 R_QUEUED),
      false, &config_size100, 0 },
    { "data size over the limit", S(C_TXN "DATA\r\n" X98 "x\r\n.\r\nNOOP\r\n"),
      S(R_TXN100 R_354 R_552_BODY R_OK), false, &config_size100, 0 },
    { "bdat size at the limit", S(C_TXN "BDAT 100 LAST\r\n" X50 X50),
      S(R_TXN100 R_QUEUED), false, &config_size100, 0 },
    { "bdat size over the limit",
      S(C_TXN "BDAT 60\r\n" X50 X10 "BDAT 41\r\n" X10 X10 X10 X10 "xBDAT 0 LAST\r\nNOOP\r\n"),
      S(R_TXN100 R_BDAT_OK("60") R_552_BODY R_552_BODY R_OK), false, &config_size100, 0 },

    /* Error and junk budgets */
    { "errors below the limit", S("FOO\r\nBAR\r\nNOOP\r\n"), S(R_500 R_500 R_OK), false,
      &config_errors3, 0 },
    { "errors at the limit", S("FOO\r\n" C_MAIL "BAR\r\nNOOP\r\n"),
      S(R_500 R_503_HELO R_500 R_421_ERRORS), true, &config_errors3, 0 },
    { "errors in a transaction",
      S(C_EHLO C_MAIL "RCPT TO:<unknown@l.test>\r\nRCPT TO:<x@remote.test>\r\n"
                      "RCPT TO:<unknown2@l.test>\r\n"),
      S(R_EHLO R_MAIL "550 5.1.1 <unknown@l.test>: Recipient address rejected: "
                      "User unknown in local recipient table\r\n"
                      "554 5.7.1 <x@remote.test>: Relay access denied\r\n"
                      "550 5.1.1 <unknown2@l.test>: Recipient address rejected: "
                      "User unknown in local recipient table\r\n" R_421_ERRORS),
      true, &config_errors3, 0 },
    { "junk below the limit", S("NOOP\r\nRSET\r\nHELO x\r\nVRFY x\r\nQUIT\r\n"),
      S(R_OK R_OK R_HELO R_VRFY R_BYE), true, &config_junk3, 0 },
    { "junk over the limit", S("NOOP\r\nRSET\r\nHELP\r\nEXPN x\r\nNOOP\r\n"),
      S(R_OK R_OK R_HELP R_421_JUNK), true, &config_junk3, 0 },

    /* Pipelining: a whole session in one buffer. */
    { "pipelined session",
      S(C_EHLO "MAIL FROM:<alice@sender.test> SIZE=120 BODY=8BITMIME\r\n"
               "RCPT TO:<bob@local.test> NOTIFY=SUCCESS,FAILURE\r\n"
               "RCPT TO:<unknown.carol@local.test>\r\n"
               "RCPT TO:<dave@local.test> ORCPT=rfc822;dave+40local.test\r\n"
               "DATA\r\n"
               "Subject: pipelined\r\n\r\n..dot\r\nbare\nlf\r\n.\r\n"
               "MAIL FROM:<>\r\nRCPT TO:<erin@local.test>\r\n"
               "BDAT 10\r\n0123456789BDAT 3 LAST\r\nab\r"
               "RSET\r\nNOOP\r\nQUIT\r\n"),
      S(R_EHLO R_MAIL R_RCPT
            "550 5.1.1 <unknown.carol@local.test>: Recipient address rejected: "
            "User unknown in local recipient table\r\n" R_RCPT R_354 R_QUEUED R_MAIL R_RCPT
            R_BDAT_OK("10") R_QUEUED R_OK R_OK R_BYE),
      true, NULL, 0 },
};

/* Everything a run must reproduce under any split of its input. */
static bool
owner_same(const struct owner *a, const struct owner *b)
{
    return bytes_equal(&a->out, &b->out) && bytes_equal(&a->delivered, &b->delivered) &&
           a->open_count == b->open_count && a->write_count == b->write_count &&
           a->deliver_count == b->deliver_count && a->accepted_count == b->accepted_count &&
           a->abort_count == b->abort_count && a->rcpt_calls == b->rcpt_calls &&
           a->consumed == b->consumed && a->session.state == b->session.state;
}

static void
check_variant(const struct session_case *c, const struct owner *ref, struct owner *o,
              const char *how, size_t cut)
{
    bool is_same = owner_same(ref, o);
    if (!is_same) {
        (void)fprintf(stderr, "case \"%s\": %s (cut %zu) differs from the whole run\n", c->name,
                      how, cut);
        struct span replies = owner_replies(o);
        unit_check_bytes(__FILE__, __LINE__, replies.ptr, replies.len, c->want, c->want_len);
    }
    CHECK(is_same);
    owner_free(o);
}

static void
run_session_case(const struct session_case *c)
{
    const uint8_t *in = (const uint8_t *)c->in;
    size_t len = c->in_len;
    struct owner *ref = owner_run(c->config, c->fail, in, len);
    struct span replies = owner_replies(ref);
    if (replies.len != c->want_len || memcmp(replies.ptr, c->want, c->want_len) != 0) {
        (void)fprintf(stderr, "case \"%s\":\n", c->name);
    }
    unit_check_bytes(__FILE__, __LINE__, replies.ptr, replies.len, c->want, c->want_len);
    bool is_closing = smtp_session_is_closing(&ref->session);
    if (is_closing != c->is_closing) {
        (void)fprintf(stderr, "case \"%s\": closing is %d\n", c->name, is_closing);
    }
    CHECK(is_closing == c->is_closing);
    if (!is_closing) {
        CHECK(ref->consumed == len);
        CHECK(smtp_session_wants_input(&ref->session));
    } else {
        CHECK(!smtp_session_wants_input(&ref->session));
    }
    CHECK(ref->session.request == SMTP_REQUEST_NONE);
    /* The file exists only inside a transaction that has one. */
    if (ref->has_file) {
        CHECK(ref->session.body != NULL);
    }

    for (size_t cut = 0; cut <= len; cut++) {
        struct owner *o = owner_new(c->config, c->fail, false);
        owner_drive(o, in, len, cut, len);
        check_variant(c, ref, o, "split in two", cut);
    }
    struct owner *o = owner_new(c->config, c->fail, false);
    owner_drive(o, in, len, 1, 1);
    check_variant(c, ref, o, "one byte at a time", 1);
    o = owner_new(c->config, c->fail, true);
    owner_drive(o, in, len, len, len);
    check_variant(c, ref, o, "lazy drain", len);
    o = owner_new(c->config, c->fail, true);
    owner_use_small_body(o);
    owner_drive(o, in, len, 3, 5);
    check_variant(c, ref, o, "lazy drain, small body buffer, 5-byte pieces", 3);
    owner_free(ref);
}

static void
test_session_cases(void)
{
    for (size_t i = 0; i < sizeof(session_cases) / sizeof(session_cases[0]); i++) {
        run_session_case(&session_cases[i]);
    }
}

/* ---- the spooled bytes --------------------------------------------------------- */

#define CHECK_DELIVERED(o, want)                                                     \
    CHECK_BYTES((o)->delivered.ptr, (o)->delivered.len, (want), sizeof(want) - 1)

/* RFC 3207: STARTTLS is offered only where TLS can start, ends the
 * reading of this feed at the command (the owner throws the rest away),
 * and starts the session over; the Received header names the TLS. */
static void
test_starttls(void)
{
    static const char input[] = C_EHLO "STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\n";
    struct owner *o = owner_new(NULL, 0, false);
    smtp_session_set_transport(&o->session, true, false, false);
    size_t used = smtp_session_feed(&o->session, (const uint8_t *)input, sizeof(input) - 1);
    CHECK(used == strlen(C_EHLO "STARTTLS\r\n"));
    CHECK(!smtp_session_wants_input(&o->session));
    CHECK(owner_serve(o) == 1);
    CHECK(o->tls_starts == 1);
    owner_collect(o);
    CHECK_REPLIES(o, "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"
                     "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
                     "250-STARTTLS\r\n250 DSN\r\n220 2.0.0 Ready to start TLS\r\n");
    /* Over TLS: EHLO needed again, STARTTLS not offered again. */
    o->out.len = 0;
    owner_drive(o, (const uint8_t *)S("MAIL FROM:<a@sender.test>\r\n" C_EHLO "STARTTLS\r\n" C_MAIL C_RCPT
                     "DATA\r\nx\r\n.\r\n"), 0, 1);
    CHECK(o->tls_starts == 1);
    CHECK_BYTES(o->out.ptr, o->out.len,
                "503 5.5.1 Error: send HELO/EHLO first\r\n" R_EHLO
                "554 5.5.1 Error: TLS already active\r\n" R_MAIL R_RCPT R_354 R_QUEUED,
                strlen("503 5.5.1 Error: send HELO/EHLO first\r\n" R_EHLO
                       "554 5.5.1 Error: TLS already active\r\n" R_MAIL R_RCPT R_354
                       R_QUEUED));
    CHECK_DELIVERED(o, "Return-Path: <alice@sender.test>\r\n"
                       "Received: from client.test ([192.0.2.1])\r\n"
                       "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
                       "\tby mx.test (toaster) with ESMTPS id TESTQID\r\n"
                       "\tfor <bob@local.test>;\r\n"
                       "\tTue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n"
                       "x\r\n");
    owner_free(o);

    /* Not offered (no TLS on this listener): 502, and EHLO does not list it. */
    o = owner_run(NULL, 0, S(C_EHLO "STARTTLS\r\n"));
    CHECK_REPLIES(o, R_EHLO "502 5.5.1 Error: command not implemented\r\n");
    CHECK(o->tls_starts == 0);
    owner_free(o);

    /* Not in the middle of a transaction, and never with an argument. */
    o = owner_new(NULL, 0, false);
    smtp_session_set_transport(&o->session, true, false, false);
    owner_drive(o, (const uint8_t *)S(C_EHLO C_MAIL "STARTTLS\r\nRSET\r\nSTARTTLS x\r\n"), 0, 7);
    CHECK(o->tls_starts == 0);
    CHECK(bytes_contains(&o->out, "503 5.5.1 Error: MAIL transaction in progress\r\n"
                                  R_OK "501 5.5.4 Syntax error in parameters or arguments\r\n"));
    owner_free(o);

    /* Implicit TLS: ESMTPS from the start, STARTTLS refused. */
    o = owner_new(NULL, 0, false);
    smtp_session_set_transport(&o->session, false, true, false);
    owner_drive(o, (const uint8_t *)S(C_EHLO "STARTTLS\r\n"), 0, 3);
    CHECK(bytes_contains(&o->out, R_EHLO "554 5.5.1 Error: TLS already active\r\n"));
    owner_free(o);
}

/* RFC 4954 on submission: PLAIN and LOGIN, with and without an initial
 * response, offered only when secure; MAIL needs it; the envelope sender
 * must be the user's. */
static void
test_auth(void)
{
    /* base64("\0alice@local.test\0secret"), ("alice@local.test"), ("secret") */
#define B64_PLAIN "AGFsaWNlQGxvY2FsLnRlc3QAc2VjcmV0"
#define B64_BAD_PLAIN "AGFsaWNlQGxvY2FsLnRlc3QAd3Jvbmc="
#define B64_USER "YWxpY2VAbG9jYWwudGVzdA=="
#define B64_PASS "c2VjcmV0"
#define R_EHLO_AUTH                                                                  \
    "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"      \
    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"                 \
    "250-AUTH PLAIN LOGIN\r\n250 DSN\r\n"
    struct smtp_session_config sub = config_default();
    sub.is_submission = true;

    /* On loopback (secure): PLAIN with an initial response. */
    struct owner *o = owner_new(&sub, 0, false);
    smtp_session_set_transport(&o->session, false, false, true);
    owner_drive(o, (const uint8_t *)S("EHLO client.test\r\nMAIL FROM:<alice@local.test>\r\n"
                                      "AUTH PLAIN " B64_PLAIN "\r\n"
                                      "MAIL FROM:<bob@local.test>\r\n"
                                      "MAIL FROM:<team@local.test> AUTH=<>\r\n" C_RCPT
                                      "DATA\r\nx\r\n.\r\nAUTH PLAIN " B64_PLAIN "\r\n"),
                0, 5);
    CHECK(o->auth_count == 1);
    CHECK_LITERAL(o->out.ptr, o->out.len,
                  "220 " HOST " ESMTP toaster\r\n" R_EHLO_AUTH
                  "530 5.7.0 Authentication required\r\n"
                  "235 2.7.0 Authentication successful\r\n"
                  "553 5.7.1 <bob@local.test>: Sender address rejected: not owned by user "
                  "alice@local.test\r\n" R_MAIL R_RCPT R_354 R_QUEUED
                  "503 5.5.1 Error: already authenticated\r\n");
    CHECK_STR(smtp_session_user(&o->session), "alice@local.test");
    owner_free(o);

    /* LOGIN step by step, a wrong password, "*" to abort, bad base64,
     * an unknown mechanism. */
    o = owner_new(&sub, 0, false);
    smtp_session_set_transport(&o->session, false, true, false);
    owner_drive(o, (const uint8_t *)S(C_EHLO "AUTH PLAIN\r\n" B64_BAD_PLAIN "\r\n"
                                      "AUTH LOGIN\r\n*\r\n"
                                      "AUTH PLAIN !!!!\r\n"
                                      "AUTH CRAM-MD5\r\n"
                                      "AUTH LOGIN\r\n" B64_USER "\r\n" B64_PASS "\r\n"),
                0, 3);
    CHECK(o->auth_count == 2);
    CHECK(bytes_contains(&o->out, "334 \r\n535 5.7.8 Error: authentication failed\r\n"
                                  "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication aborted\r\n"
                                  "501 5.5.2 Cannot decode response\r\n"
                                  "504 5.5.4 Unsupported authentication mechanism\r\n"
                                  "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"
                                  "235 2.7.0 Authentication successful\r\n"));
    owner_free(o);

    /* Not secure (no TLS, not loopback): not offered, 538 on use. */
    o = owner_new(&sub, 0, false);
    smtp_session_set_transport(&o->session, true, false, false);
    owner_drive(o, (const uint8_t *)S(C_EHLO "AUTH PLAIN " B64_PLAIN "\r\n"), 0, 4);
    CHECK(!bytes_contains(&o->out, "AUTH PLAIN"));
    CHECK(bytes_contains(&o->out, "538 5.7.11 Encryption required"));
    CHECK(o->auth_count == 0);
    owner_free(o);

    /* Port 25: no AUTH at all. */
    o = owner_run(NULL, 0, S(C_EHLO "AUTH PLAIN " B64_PLAIN "\r\n"));
    CHECK_REPLIES(o, R_EHLO "503 5.5.1 Error: authentication not enabled\r\n");
    owner_free(o);
}

static void
test_spool_trace_headers(void)
{
    struct owner *o = owner_run(NULL, 0, S(C_TXN "DATA\r\nSubject: hi\r\n\r\nHello\r\n.\r\n"));
    CHECK_DELIVERED(o, "Return-Path: <alice@sender.test>\r\n"
                       "Received: from client.test ([192.0.2.1])\r\n"
                       "\tby mx.test (toaster) with ESMTP id TESTQID\r\n"
                       "\tfor <bob@local.test>;\r\n"
                       "\tTue, 14 Nov 2023 22:13:20 +0000 (UTC)\r\n"
                       "Subject: hi\r\n\r\nHello\r\n");
    CHECK(o->accepted_count == 1);
    CHECK(o->delivered_txn.body_bytes == o->delivered.len);
    CHECK(o->delivered_txn.rcpt_count == 1);
    CHECK_STR(o->delivered_txn.mail_from, "alice@sender.test");
    CHECK_STR(o->delivered_txn.first_rcpt, "bob@local.test");
    CHECK(!o->delivered_txn.is_bdat);
    CHECK(o->session.state == SMTP_STATE_READY);
    CHECK(o->session.body == NULL);
    owner_free(o);

    /* Two recipients: the Received line names neither. */
    o = owner_run(NULL, 0, S(C_TXN "RCPT TO:<carol@local.test>\r\nDATA\r\nx\r\n.\r\n"));
    CHECK_DELIVERED(o, TRACE_HEAD("alice@sender.test", "client.test", "ESMTP") TRACE_TAIL
                       "x\r\n");
    CHECK(o->delivered_txn.rcpt_count == 2);
    CHECK_STR(o->delivered_txn.first_rcpt, "bob@local.test");
    owner_free(o);

    /* One accepted out of three tried: named. */
    o = owner_run(NULL, 0,
                  S(C_EHLO C_MAIL "RCPT TO:<unknown@local.test>\r\nRCPT TO:<x@remote.test>\r\n"
                                  C_RCPT "DATA\r\nx\r\n.\r\n"));
    CHECK_DELIVERED(o, TRACE_ONE "x\r\n");
    owner_free(o);

    /* HELO gives SMTP, SMTPUTF8 gives UTF8SMTP, <> gives an empty Return-Path. */
    o = owner_run(NULL, 0, S(C_HELO "MAIL FROM:<>\r\n" C_RCPT "DATA\r\nx\r\n.\r\n"));
    CHECK_DELIVERED(o, TRACE_HEAD("", "client.test", "SMTP") TRACE_FOR("bob@local.test")
                       TRACE_TAIL "x\r\n");
    CHECK_STR(o->delivered_txn.mail_from, "");
    owner_free(o);
    o = owner_run(NULL, 0,
                  S(C_EHLO "MAIL FROM:<j\xc3\xb6rg@sender.test> SMTPUTF8\r\n"
                           "RCPT TO:<b\xc3\xb8@local.test>\r\nDATA\r\nx\r\n.\r\n"));
    CHECK_DELIVERED(o, TRACE_HEAD("j\xc3\xb6rg@sender.test", "client.test", "UTF8SMTP")
                       TRACE_FOR("b\xc3\xb8@local.test") TRACE_TAIL "x\r\n");
    CHECK(o->delivered_txn.is_smtputf8);
    owner_free(o);

    /* The HELO name is cleaned for the header: first word, no parentheses,
     * at most 255 bytes. */
    o = owner_run(NULL, 0, S("EHLO bad\x01name\r\n" C_EHLO));
    CHECK_REPLIES(o, "501 5.5.4 Syntax: EHLO hostname\r\n" R_EHLO);
    owner_free(o);
    o = owner_run(NULL, 0, S("EHLO (evil)name more words\r\n" C_MAIL C_RCPT
                             "DATA\r\nx\r\n.\r\n"));
    CHECK_DELIVERED(o, TRACE_HEAD("alice@sender.test", "?evil?name", "ESMTP")
                       TRACE_FOR("bob@local.test") TRACE_TAIL "x\r\n");
    owner_free(o);
}

/* A HELO name as long as a command line may be is cut to 255 bytes. */
static void
test_spool_long_helo(void)
{
    char line[SMTP_LINE_BYTES_MAX + 3];
    memcpy(line, "HELO ", 5);
    memset(line + 5, 'h', SMTP_LINE_BYTES_MAX - 5);
    memcpy(line + SMTP_LINE_BYTES_MAX, "\r\n", 2);
    struct bytes in = { 0 };
    bytes_append(&in, line, SMTP_LINE_BYTES_MAX + 2);
    bytes_append(&in, S(C_MAIL C_RCPT "DATA\r\nx\r\n.\r\n"));
    struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_HELO R_MAIL R_RCPT R_354 R_QUEUED);
    char helo[256];
    memset(helo, 'h', 255);
    helo[255] = '\0';
    char want[1024];
    int n = snprintf(want, sizeof(want),
                     "Return-Path: <alice@sender.test>\r\nReceived: from %s ([" CLIENT_IP "])\r\n"
                     "\tby " HOST " (toaster) with SMTP id " QUEUE_ID TRACE_FOR("bob@local.test")
                     TRACE_TAIL "x\r\n",
                     helo);
    CHECK(n > 0);
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want, (size_t)n);
    owner_free(o);
    bytes_free(&in);
}

/* Client side of DATA: stuff every line that starts with '.', end with
 * CRLF.CRLF. The body must be whole CRLF lines. */
static void
data_stuff(struct bytes *out, const char *body, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        const char *lf = memchr(body + pos, '\n', len - pos);
        size_t end = lf != NULL ? (size_t)(lf - body) + 1 : len;
        if (body[pos] == '.') {
            bytes_append(out, ".", 1);
        }
        bytes_append(out, body + pos, end - pos);
        pos = end;
    }
    bytes_append(out, ".\r\n", 3);
}

static void
test_spool_dot_stuffing(void)
{
    static const char *const bodies[] = {
        "",
        ".\r\n",
        "..\r\n",
        ".hidden\r\n",
        "a\r\n.\r\nb\r\n",
        "a\r\n..\r\n...\r\n. \r\n .\r\n",
        "Subject: dots\r\n\r\n.\r\n.\r\n.x\r\n\r\n.\r\n",
        "no dot\r\n\r\n\r\n",
        "\r\n",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        struct bytes in = { 0 };
        bytes_append(&in, S(C_TXN "DATA\r\n"));
        data_stuff(&in, bodies[i], strlen(bodies[i]));
        bytes_append(&in, S("NOOP\r\n"));
        struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
        CHECK_REPLIES(o, R_TXN R_354 R_QUEUED R_OK);
        struct bytes want = { 0 };
        bytes_append(&want, S(TRACE_ONE));
        bytes_append(&want, bodies[i], strlen(bodies[i]));
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        owner_free(o);
        bytes_free(&want);
        bytes_free(&in);
    }
}

static void
test_spool_bare_lf_and_cr(void)
{
    struct owner *o = owner_run(NULL, 0, S(C_TXN "DATA\r\na\nb\r\nc\rd\r\n\n\r\n.\r\n"));
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED);
    CHECK_DELIVERED(o, TRACE_ONE "a\r\nb\r\nc\rd\r\n\r\n\r\n");
    owner_free(o);

    /* Refused by policy: nothing delivered, the spool file dropped, and the
     * session goes on. */
    o = owner_run(&config_bare_lf, 0, S(C_TXN "DATA\r\na\nb\r\n.\r\nNOOP\r\n"));
    CHECK_REPLIES(o, R_TXN R_354 R_550_BARE_LF R_OK);
    CHECK(o->deliver_count == 0);
    CHECK(o->open_count == 1);
    CHECK(o->abort_count >= 1);
    CHECK(!o->has_file);
    CHECK(o->session.state == SMTP_STATE_READY);
    owner_free(o);
}

static void
test_spool_bdat_exact(void)
{
    /* Every byte value but LF, CRLF pairs, "\r\n.\r\n" and a bare CR: BDAT
     * carries them as they are. */
    struct bytes content = { 0 };
    for (unsigned v = 0; v < 256; v++) {
        if (v != '\n') {
            uint8_t c = (uint8_t)v;
            bytes_append(&content, &c, 1);
        }
    }
    bytes_append(&content, S("\r\n.\r\nQUIT\r\n\r\n..\r\nx\ry\r\n"));
    for (size_t cut = 0; cut <= content.len; cut += 37) {
        struct bytes in = { 0 };
        char cmd[64];
        bytes_append(&in, S(C_TXN));
        int n = snprintf(cmd, sizeof(cmd), "BDAT %zu\r\n", cut);
        bytes_append(&in, cmd, (size_t)n);
        bytes_append(&in, content.ptr, cut);
        n = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", content.len - cut);
        bytes_append(&in, cmd, (size_t)n);
        bytes_append(&in, content.ptr + cut, content.len - cut);
        bytes_append(&in, S("NOOP\r\n"));
        struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
        CHECK(o->accepted_count == 1);
        CHECK(o->delivered_txn.is_bdat);
        struct bytes want = { 0 };
        bytes_append(&want, S(TRACE_ONE));
        bytes_append(&want, content.ptr, content.len);
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        CHECK(bytes_contains(&o->out, R_OK));
        owner_free(o);
        bytes_free(&want);
        bytes_free(&in);
    }
    bytes_free(&content);

    /* A CRLF split between two chunks stays one line end; a CR at the very
     * end of the last chunk is kept; a bare LF becomes CRLF. */
    struct owner *o =
        owner_run(NULL, 0, S(C_TXN "BDAT 3\r\nab\rBDAT 4\r\n\ncd\nBDAT 2 LAST\r\ne\r"));
    CHECK_REPLIES(o, R_TXN R_BDAT_OK("3") R_BDAT_OK("7") R_QUEUED);
    CHECK_DELIVERED(o, TRACE_ONE "ab\r\ncd\r\ne\r");
    owner_free(o);

    /* BDAT 0 LAST alone: the file is the trace headers. */
    o = owner_run(NULL, 0, S(C_TXN "BDAT 0 LAST\r\n"));
    CHECK_DELIVERED(o, TRACE_ONE);
    CHECK(o->delivered_txn.body_bytes == sizeof(TRACE_ONE) - 1);
    owner_free(o);
}

/* Bodies bigger than the body buffer go out in several writes. */
static void
test_spool_large(void)
{
    struct bytes body = { 0 };
    uint32_t seed = 12345;
    bool is_long_done = false;
    while (body.len < 300000) {
        seed = seed * 1103515245u + 12345u;
        size_t line = (seed >> 8) % 3000;
        if (body.len > 70000 && !is_long_done) {
            line = 100000; /* one long line */
            is_long_done = true;
        }
        for (size_t k = 0; k < line; k++) {
            char c = (char)('a' + (k + body.len) % 26);
            if (k == 0 && (seed & 0x10000)) {
                c = '.';
            }
            bytes_append(&body, &c, 1);
        }
        bytes_append(&body, "\r\n", 2);
    }
    struct bytes in = { 0 };
    bytes_append(&in, S(C_TXN "DATA\r\n"));
    data_stuff(&in, (const char *)body.ptr, body.len);
    struct bytes want = { 0 };
    bytes_append(&want, S(TRACE_ONE));
    bytes_append(&want, body.ptr, body.len);

    struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED);
    CHECK(o->write_count >= 5);
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
    owner_free(o);
    o = owner_new(NULL, 0, false);
    owner_drive(o, in.ptr, in.len, 1000, 4093);
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED);
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
    owner_free(o);
    o = owner_new(NULL, 0, false);
    owner_use_small_body(o);
    owner_drive(o, in.ptr, in.len, 333, 1021);
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED);
    CHECK(o->write_count >= 300000 / (2 * SMTP_LINE_BYTES_MAX));
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
    owner_free(o);

    /* The same bytes as one BDAT chunk (no dots to stuff there). */
    in.len = 0;
    bytes_append(&in, S(C_TXN));
    char cmd[64];
    int n = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", body.len);
    bytes_append(&in, cmd, (size_t)n);
    bytes_append(&in, body.ptr, body.len);
    o = owner_new(NULL, 0, false);
    owner_drive(o, in.ptr, in.len, 500, 7919);
    CHECK_REPLIES(o, R_TXN R_QUEUED);
    CHECK(o->write_count >= 5);
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
    owner_free(o);
    o = owner_new(NULL, 0, false);
    owner_use_small_body(o);
    owner_drive(o, in.ptr, in.len, 777, 3001);
    CHECK_REPLIES(o, R_TXN R_QUEUED);
    CHECK(o->write_count >= 300000 / (2 * SMTP_LINE_BYTES_MAX));
    CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
    owner_free(o);

    bytes_free(&want);
    bytes_free(&in);
    bytes_free(&body);
}

/* Bodies and chunks that end right at the edge of the body buffer, where
 * the session must ask for a write before it can go on. */
static void
test_spool_buffer_edges(void)
{
    const size_t trace = sizeof(TRACE_ONE) - 1;
    for (size_t content = BODY_BUFFER_BYTES - trace - 6; content <= BODY_BUFFER_BYTES - trace + 4;
         content++) {
        /* content bytes of lines up to 1000 long, ending in CRLF. */
        struct bytes body = { 0 };
        for (size_t i = 0; i + 2 < content; i++) {
            char c = (char)('a' + i % 26);
            if (i % 1000 == 998) {
                c = '\r';
            } else if (i % 1000 == 999) {
                c = '\n';
            }
            bytes_append(&body, &c, 1);
        }
        bytes_append(&body, "\r\n", 2);
        struct bytes want = { 0 };
        bytes_append(&want, S(TRACE_ONE));
        bytes_append(&want, body.ptr, body.len);

        /* DATA. */
        struct bytes in = { 0 };
        bytes_append(&in, S(C_TXN "DATA\r\n"));
        data_stuff(&in, (const char *)body.ptr, body.len);
        bytes_append(&in, S("NOOP\r\n"));
        struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
        CHECK_REPLIES(o, R_TXN R_354 R_QUEUED R_OK);
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        owner_free(o);

        /* BDAT: one chunk that ends at the edge (before or after the CR of
         * the last CRLF), then the rest. */
        char cmd[64];
        int n;
        for (size_t rest = 1; rest <= 3; rest++) {
            in.len = 0;
            bytes_append(&in, S(C_TXN));
            size_t first = body.len - rest;
            n = snprintf(cmd, sizeof(cmd), "BDAT %zu\r\n", first);
            bytes_append(&in, cmd, (size_t)n);
            bytes_append(&in, body.ptr, first);
            n = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", rest);
            bytes_append(&in, cmd, (size_t)n);
            bytes_append(&in, body.ptr + first, rest);
            bytes_append(&in, S("NOOP\r\n"));
            o = owner_run(NULL, 0, in.ptr, in.len);
            CHECK(o->accepted_count == 1);
            CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
            CHECK(bytes_contains(&o->out, R_QUEUED R_OK));
            owner_free(o);
        }

        /* BDAT: a last chunk that ends at the edge. */
        in.len = 0;
        bytes_append(&in, S(C_TXN));
        n = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", body.len);
        bytes_append(&in, cmd, (size_t)n);
        bytes_append(&in, body.ptr, body.len);
        o = owner_run(NULL, 0, in.ptr, in.len);
        CHECK(o->accepted_count == 1);
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        owner_free(o);

        bytes_free(&in);
        bytes_free(&want);
        bytes_free(&body);
    }
}

/* Bytes the decoders hold back (a CR, a line-start ".", ".\r") may meet a
 * full body buffer: the session then asks for a write without taking a
 * byte, and must go on exactly where it was. The smallest body buffer and
 * one byte at a time put every held state at every distance from the edge. */
static void
test_spool_held_bytes_at_edge(void)
{
    /* A body dense in bare CRs, CRLFs, stuffed dots and bare LFs. */
    static const char pattern[] = "ab\rc\r\r\n.d\r\n..\r\n.\rx\r\ny\nz\r\n";
    struct bytes content = { 0 };
    while (content.len < 3 * 2 * SMTP_LINE_BYTES_MAX) {
        bytes_append(&content, pattern, sizeof(pattern) - 1);
    }
    bytes_append(&content, S("end\r\n"));
    /* What DATA stores: bare LF made CRLF, the leading dot of "..", ".d"
     * and ".\rx" dropped. */
    struct bytes want_data = { 0 };
    bytes_append(&want_data, S(TRACE_ONE));
    struct bytes want_bdat = { 0 };
    bytes_append(&want_bdat, S(TRACE_ONE));
    for (size_t i = 0; i + sizeof(pattern) - 1 <= content.len; i += sizeof(pattern) - 1) {
        bytes_append(&want_data, S("ab\rc\r\r\nd\r\n.\r\n\rx\r\ny\r\nz\r\n"));
        bytes_append(&want_bdat, S("ab\rc\r\r\n.d\r\n..\r\n.\rx\r\ny\r\nz\r\n"));
    }
    bytes_append(&want_data, S("end\r\n"));
    bytes_append(&want_bdat, S("end\r\n"));

    for (size_t shift = 0; shift < sizeof(pattern) - 1; shift++) {
        /* DATA, shifted so each held state lands on the edge once. */
        struct bytes in = { 0 };
        bytes_append(&in, S(C_TXN "DATA\r\n"));
        for (size_t k = 0; k < shift; k++) {
            bytes_append(&in, "w", 1);
        }
        bytes_append(&in, content.ptr, content.len);
        bytes_append(&in, S(".\r\nNOOP\r\n"));
        struct bytes want = { 0 };
        bytes_append(&want, S(TRACE_ONE));
        for (size_t k = 0; k < shift; k++) {
            bytes_append(&want, "w", 1);
        }
        bytes_append(&want, want_data.ptr + sizeof(TRACE_ONE) - 1,
                     want_data.len - (sizeof(TRACE_ONE) - 1));
        struct owner *o = owner_new(NULL, 0, false);
        owner_use_small_body(o);
        owner_drive(o, in.ptr, in.len, 1, 1);
        CHECK_REPLIES(o, R_TXN R_354 R_QUEUED R_OK);
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        CHECK(o->write_count >= 3);
        owner_free(o);

        /* BDAT: the same bytes, in chunks of 1000. */
        in.len = 0;
        bytes_append(&in, S(C_TXN));
        want.len = 0;
        bytes_append(&want, S(TRACE_ONE));
        for (size_t k = 0; k < shift; k++) {
            bytes_append(&want, "w", 1);
        }
        bytes_append(&want, want_bdat.ptr + sizeof(TRACE_ONE) - 1,
                     want_bdat.len - (sizeof(TRACE_ONE) - 1));
        struct bytes chunked = { 0 };
        for (size_t k = 0; k < shift; k++) {
            bytes_append(&chunked, "w", 1);
        }
        bytes_append(&chunked, content.ptr, content.len);
        for (size_t pos = 0; pos < chunked.len; pos += 1000) {
            size_t n = chunked.len - pos < 1000 ? chunked.len - pos : 1000;
            char cmd[64];
            int len = snprintf(cmd, sizeof(cmd), "BDAT %zu%s\r\n", n,
                               pos + n == chunked.len ? " LAST" : "");
            bytes_append(&in, cmd, (size_t)len);
            bytes_append(&in, chunked.ptr + pos, n);
        }
        o = owner_new(NULL, 0, false);
        owner_use_small_body(o);
        owner_drive(o, in.ptr, in.len, 1, 1);
        CHECK(o->accepted_count == 1);
        CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
        owner_free(o);
        bytes_free(&chunked);
        bytes_free(&want);
        bytes_free(&in);
    }
    bytes_free(&want_bdat);
    bytes_free(&want_data);
    bytes_free(&content);
}

/* ---- limits ------------------------------------------------------------------ */

static void
line_of(struct bytes *out, size_t len, const char *end)
{
    /* "HELO hhhh..." of len bytes, then the line end. */
    bytes_append(out, "HELO ", 5);
    for (size_t i = 5; i < len; i++) {
        bytes_append(out, "h", 1);
    }
    bytes_append(out, end, strlen(end));
}

static void
test_line_limit(void)
{
    static const char *const ends[] = { "\r\n", "\n" };
    for (size_t e = 0; e < 2; e++) {
        for (size_t len = SMTP_LINE_BYTES_MAX - 1; len <= SMTP_LINE_BYTES_MAX + 1; len++) {
            struct bytes in = { 0 };
            line_of(&in, len, ends[e]);
            bytes_append(&in, S("NOOP\r\n"));
            const char *want = len <= SMTP_LINE_BYTES_MAX ? R_HELO R_OK : R_TOO_LONG R_OK;
            /* Whole, split at every byte near the end of the line, and one
             * byte at a time. */
            struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
            CHECK_REPLIES(o, want);
            CHECK(o->consumed == in.len);
            owner_free(o);
            for (size_t cut = len - 3; cut <= len + 3; cut++) {
                o = owner_new(NULL, 0, false);
                owner_drive(o, in.ptr, in.len, cut, in.len);
                CHECK_REPLIES(o, want);
                owner_free(o);
            }
            o = owner_new(NULL, 0, false);
            owner_drive(o, in.ptr, in.len, 1, 1);
            CHECK_REPLIES(o, want);
            owner_free(o);
            bytes_free(&in);
        }
    }

    /* The CR that would be byte MAX + 1 must be a CR of CRLF. */
    struct bytes in = { 0 };
    line_of(&in, SMTP_LINE_BYTES_MAX, "\r\r\nNOOP\r\n");
    struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_TOO_LONG R_OK);
    owner_free(o);
    bytes_free(&in);
}

static void
test_huge_line(void)
{
    /* One 1 MiB line: one 500, and the session goes on. */
    struct bytes in = { 0 };
    bytes_append(&in, S("NOOP "));
    while (in.len < 1024 * 1024) {
        bytes_append(&in, S(X50));
    }
    bytes_append(&in, S("\r\nNOOP\r\n" C_EHLO));
    struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_TOO_LONG R_OK R_EHLO);
    CHECK(o->session.error_count == 1);
    owner_free(o);
    o = owner_new(NULL, 0, false);
    owner_drive(o, in.ptr, in.len, 16384, 16384);
    CHECK_REPLIES(o, R_TOO_LONG R_OK R_EHLO);
    owner_free(o);
    bytes_free(&in);

    /* The same inside a transaction, and with bare LF. */
    in = (struct bytes){ 0 };
    bytes_append(&in, S(C_TXN "RCPT TO:<"));
    while (in.len < 1024 * 1024) {
        bytes_append(&in, S(X50));
    }
    bytes_append(&in, S("@local.test>\nDATA\r\nx\r\n.\r\n"));
    o = owner_run(NULL, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_TXN R_TOO_LONG R_354 R_QUEUED);
    CHECK(o->delivered_txn.rcpt_count == 1);
    owner_free(o);
    bytes_free(&in);
}

static void
test_size_limit(void)
{
    /* Far over the limit, with writes already done when it is noticed:
     * the rest is drained, one 552, the spool file dropped. */
    struct smtp_session_config config = config_default();
    config.message_size_limit = 100000;
    struct bytes in = { 0 };
    bytes_append(&in, S(C_TXN "DATA\r\n"));
    while (in.len < 300000) {
        bytes_append(&in, S(X50 "\r\n"));
    }
    bytes_append(&in, S(".\r\nNOOP\r\n"));
    struct owner *o = owner_run(&config, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_EHLO_SIZE("100000") R_MAIL R_RCPT R_354 R_552_BODY R_OK);
    CHECK(o->write_count >= 1);
    CHECK(o->deliver_count == 0);
    CHECK(o->abort_count >= 1);
    CHECK(!o->has_file);
    CHECK(o->session.state == SMTP_STATE_READY);
    CHECK(o->session.error_count == 1);
    owner_free(o);
    bytes_free(&in);

    /* BDAT over the limit in one chunk. */
    in = (struct bytes){ 0 };
    bytes_append(&in, S(C_TXN "BDAT 150000 LAST\r\n"));
    for (size_t i = 0; i < 3000; i++) {
        bytes_append(&in, S(X50));
    }
    bytes_append(&in, S("NOOP\r\n"));
    o = owner_run(&config, 0, in.ptr, in.len);
    CHECK_REPLIES(o, R_EHLO_SIZE("100000") R_MAIL R_RCPT R_552_BODY R_OK);
    CHECK(o->deliver_count == 0);
    CHECK(!o->has_file);
    owner_free(o);
    bytes_free(&in);

    /* The size limit checks the body only, not the trace headers. */
    o = owner_run(&config_size100, 0, S(C_TXN "BDAT 100 LAST\r\n" X50 X50));
    CHECK(o->accepted_count == 1);
    CHECK(o->delivered.len == sizeof(TRACE_ONE) - 1 + 100);
    owner_free(o);
}

static void
test_recipient_limit(void)
{
    /* The default limit at max - 1, max and max + 1. */
    static const uint32_t counts[] = { SMTP_RCPT_DEFAULT - 1, SMTP_RCPT_DEFAULT,
                                       SMTP_RCPT_DEFAULT + 1 };
    for (size_t c = 0; c < 3; c++) {
        struct bytes in = { 0 };
        struct bytes want = { 0 };
        bytes_append(&in, S(C_EHLO C_MAIL));
        bytes_append(&want, S(R_EHLO R_MAIL));
        for (uint32_t i = 0; i < counts[c]; i++) {
            char line[64];
            int n = snprintf(line, sizeof(line), "RCPT TO:<user%u@local.test>\r\n", i);
            bytes_append(&in, line, (size_t)n);
            if (i < SMTP_RCPT_DEFAULT) {
                bytes_append(&want, S(R_RCPT));
            } else {
                bytes_append(&want, S(R_452_RCPTS));
            }
        }
        bytes_append(&in, S("DATA\r\nx\r\n.\r\n"));
        bytes_append(&want, S(R_354 R_QUEUED));
        struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
        struct span replies = owner_replies(o);
        CHECK_BYTES(replies.ptr, replies.len, want.ptr, want.len);
        uint32_t accepted = counts[c] < SMTP_RCPT_DEFAULT ? counts[c] : SMTP_RCPT_DEFAULT;
        CHECK(o->delivered_txn.rcpt_count == accepted);
        CHECK(o->rcpt_calls == accepted);
        CHECK(o->session.error_count == 0);
        CHECK_STR(o->delivered_txn.first_rcpt, "user0@local.test");
        owner_free(o);
        bytes_free(&in);
        bytes_free(&want);
    }
}

static void
test_error_limit(void)
{
    /* error_limit errors of any kind: the last one is followed by 421. */
    for (uint32_t limit = 1; limit <= 25; limit++) {
        struct smtp_session_config config = config_default();
        config.error_limit = limit;
        for (uint32_t errors = limit - 1; errors <= limit + 1; errors++) {
            struct bytes in = { 0 };
            struct bytes want = { 0 };
            for (uint32_t i = 0; i < errors; i++) {
                bytes_append(&in, S("BOGUS\r\n"));
                bytes_append(&want, S(R_500));
            }
            bytes_append(&in, S("NOOP\r\n"));
            if (errors >= limit) {
                /* Only `limit` 500s: the 421 comes right after the last. */
                want.len = 0;
                for (uint32_t i = 0; i < limit; i++) {
                    bytes_append(&want, S(R_500));
                }
                bytes_append(&want, S(R_421_ERRORS));
            } else {
                bytes_append(&want, S(R_OK));
            }
            struct owner *o = owner_run(&config, 0, in.ptr, in.len);
            struct span replies = owner_replies(o);
            CHECK_BYTES(replies.ptr, replies.len, want.ptr, want.len);
            CHECK(smtp_session_is_closing(&o->session) == (errors >= limit));
            owner_free(o);
            bytes_free(&in);
            bytes_free(&want);
        }
    }

    /* The error that hits the limit may end a body: 421 follows the 552 and
     * the transaction is dropped once. */
    struct smtp_session_config config = config_size100;
    config.error_limit = 2;
    struct owner *o = owner_run(&config, 0, S("BOGUS\r\n" C_TXN "DATA\r\n" X98 "xx\r\n.\r\n"));
    CHECK_REPLIES(o, R_500 R_TXN100 R_354 R_552_BODY R_421_ERRORS);
    CHECK(smtp_session_is_closing(&o->session));
    CHECK(!o->has_file);
    CHECK(o->deliver_count == 0);
    owner_free(o);
    o = owner_run(&config, 0, S("BOGUS\r\n" C_TXN "BDAT 101\r\n" X98 "xxxNOOP\r\n"));
    CHECK_REPLIES(o, R_500 R_TXN100 R_552_BODY R_421_ERRORS);
    CHECK(smtp_session_is_closing(&o->session));
    CHECK(!o->has_file);
    owner_free(o);
    o = owner_run(&config, 0, S("BOGUS\r\n" C_EHLO "BDAT 3\r\nabcNOOP\r\n"));
    CHECK_REPLIES(o, R_500 R_EHLO_SIZE("100") R_503_MAIL R_421_ERRORS);
    CHECK(smtp_session_is_closing(&o->session));
    owner_free(o);
}

static void
test_junk_limit(void)
{
    for (uint32_t limit = 0; limit <= 5; limit++) {
        struct smtp_session_config config = config_default();
        config.junk_command_limit = limit;
        for (uint32_t junk = limit; junk <= limit + 1; junk++) {
            struct bytes in = { 0 };
            struct bytes want = { 0 };
            for (uint32_t i = 0; i < junk; i++) {
                bytes_append(&in, S("NOOP\r\n" C_HELO));
                if (i < limit) {
                    bytes_append(&want, S(R_OK R_HELO));
                }
            }
            bytes_append(&in, S(C_EHLO));
            if (junk > limit) {
                bytes_append(&want, S(R_421_JUNK));
            } else {
                bytes_append(&want, S(R_EHLO));
            }
            struct owner *o = owner_run(&config, 0, in.ptr, in.len);
            struct span replies = owner_replies(o);
            CHECK_BYTES(replies.ptr, replies.len, want.ptr, want.len);
            CHECK(smtp_session_is_closing(&o->session) == (junk > limit));
            owner_free(o);
            bytes_free(&in);
            bytes_free(&want);
        }
    }
}

/* ---- transactions ----------------------------------------------------------- */

static void
test_txn_fields(void)
{
    struct owner *o = owner_run(
        NULL, 0,
        S(C_EHLO "MAIL FROM:<alice@sender.test> SIZE=500 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1 "
                 "SMTPUTF8\r\n"
                 "RCPT TO:<bob@local.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;bob+40local.test\r\n"
                 "DATA\r\nx\r\n.\r\n"));
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED);
    CHECK(o->last_notify == (SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY));
    CHECK_STR(o->last_orcpt, "rfc822;bob+40local.test");
    CHECK_STR(o->last_rcpt, "bob@local.test");
    const struct smtp_txn *txn = &o->delivered_txn;
    CHECK(txn->declared_size == 500);
    CHECK(txn->body_type == SMTP_BODY_8BITMIME);
    CHECK(txn->dsn_ret == SMTP_DSN_RET_HDRS);
    CHECK_STR(txn->dsn_envid, "QQ+1");
    CHECK(txn->is_smtputf8);
    CHECK(txn->rcpt_count == 1);
    CHECK(!txn->is_bdat);
    owner_free(o);

    o = owner_run(NULL, 0, S(C_EHLO "MAIL FROM:<a@b.test> BODY=7BIT RET=FULL\r\n"
                             "RCPT TO:<c@local.test> NOTIFY=NEVER\r\nBDAT 1 LAST\r\nx"));
    CHECK(o->last_notify == SMTP_NOTIFY_NEVER);
    CHECK_STR(o->last_orcpt, "");
    CHECK(o->delivered_txn.body_type == SMTP_BODY_7BIT);
    CHECK(o->delivered_txn.dsn_ret == SMTP_DSN_RET_FULL);
    CHECK(o->delivered_txn.declared_size == 0);
    CHECK(o->delivered_txn.is_bdat);
    CHECK(!o->delivered_txn.is_smtputf8);
    owner_free(o);

    /* A refused MAIL leaves nothing behind for the next one. */
    o = owner_run(NULL, 0,
                  S(C_EHLO "MAIL FROM:<x@y.test> SIZE=77 BODY=7BIT RET=HDRS ENVID=abc XFOO\r\n"
                           C_MAIL C_RCPT "DATA\r\nx\r\n.\r\n"));
    CHECK_REPLIES(o, R_EHLO "555 5.5.4 Unsupported option: XFOO\r\n" R_MAIL R_RCPT R_354
                            R_QUEUED);
    txn = &o->delivered_txn;
    CHECK(txn->declared_size == 0);
    CHECK(txn->body_type == SMTP_BODY_UNSPECIFIED);
    CHECK(txn->dsn_ret == SMTP_DSN_RET_UNSPECIFIED);
    CHECK_STR(txn->dsn_envid, "");
    CHECK_STR(txn->mail_from, "alice@sender.test");
    owner_free(o);

    /* RSET, HELO/EHLO and a finished transaction each call txn_abort; the
     * next transaction starts clean. */
    o = owner_run(NULL, 0, S(C_TXN "RSET\r\n"));
    CHECK(o->abort_count == 1);
    CHECK(o->session.txn.rcpt_count == 0);
    CHECK_STR(o->session.txn.mail_from, "");
    owner_free(o);
    o = owner_run(NULL, 0, S(C_TXN C_EHLO));
    CHECK(o->abort_count == 1);
    owner_free(o);
    o = owner_run(NULL, 0, S(C_TXN "DATA\r\nx\r\n.\r\n"));
    CHECK(o->abort_count == 1);
    CHECK(o->session.txn.rcpt_count == 0);
    owner_free(o);
}

static void
test_smuggling(void)
{
    static const struct {
        const char *data;   /* after DATA, up to the real end */
        const char *body;   /* what must be spooled */
    } cases[] = {
        { "line\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n", "line\r\n.\r\nMAIL FROM:<evil@x.test>\r\n" },
        { "line\r\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n",
          "line\r\n.\r\nMAIL FROM:<evil@x.test>\r\n" },
        { "line\n.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n",
          "line\r\n.\r\nMAIL FROM:<evil@x.test>\r\n" },
        { "line\r.\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", "line\r.\r\nMAIL FROM:<evil@x.test>\r\n" },
        { "line\r\n.\r\rMAIL FROM:<evil@x.test>\r\n.\r\n", NULL },
        { "line\n.\n\r\nMAIL FROM:<evil@x.test>\r\n.\r\n", NULL },
        { "line\r\n\n.\nMAIL FROM:<evil@x.test>\r\n.\r\n", NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bytes in = { 0 };
        bytes_append(&in, S(C_TXN "DATA\r\n"));
        bytes_append(&in, cases[i].data, strlen(cases[i].data));
        bytes_append(&in, S("NOOP\r\n"));
        struct owner *o = owner_run(NULL, 0, in.ptr, in.len);
        CHECK_REPLIES(o, R_TXN R_354 R_QUEUED R_OK);
        CHECK(o->accepted_count == 1);
        CHECK(bytes_contains(&o->delivered, "MAIL FROM:<evil@x.test>"));
        if (cases[i].body != NULL) {
            struct bytes want = { 0 };
            bytes_append(&want, S(TRACE_ONE));
            bytes_append(&want, cases[i].body, strlen(cases[i].body));
            CHECK_BYTES(o->delivered.ptr, o->delivered.len, want.ptr, want.len);
            bytes_free(&want);
        }
        owner_free(o);

        /* With the bare LF policy: refused whole, the MAIL never runs. */
        o = owner_run(&config_bare_lf, 0, in.ptr, in.len);
        struct span replies = owner_replies(o);
        bool has_bare_lf = false;
        for (const char *p = cases[i].data; *p != '\0'; p++) {
            if (*p == '\n' && (p == cases[i].data || p[-1] != '\r')) {
                has_bare_lf = true;
            }
        }
        if (has_bare_lf) {
            CHECK_LITERAL(replies.ptr, replies.len, R_TXN R_354 R_550_BARE_LF R_OK);
            CHECK(o->deliver_count == 0);
        } else {
            CHECK_LITERAL(replies.ptr, replies.len, R_TXN R_354 R_QUEUED R_OK);
        }
        owner_free(o);
        bytes_free(&in);
    }
}

/* ---- timeout, shutdown --------------------------------------------------------- */

static void
test_timeout(void)
{
    struct owner *o = owner_new(NULL, 0, false);
    smtp_session_timeout(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_421_TIMEOUT);
    CHECK(smtp_session_is_closing(&o->session));
    CHECK(!smtp_session_wants_input(&o->session));
    CHECK(smtp_session_feed(&o->session, (const uint8_t *)"NOOP\r\n", 6) == 0);
    smtp_session_timeout(&o->session); /* once closing, nothing more */
    owner_drain(o);
    CHECK_REPLIES(o, R_421_TIMEOUT);
    owner_free(o);

    /* In a transaction: it is dropped. */
    o = owner_run(NULL, 0, S(C_TXN));
    unsigned aborts = o->abort_count;
    smtp_session_timeout(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN R_421_TIMEOUT);
    CHECK(o->abort_count == aborts + 1);
    owner_free(o);

    /* In the middle of a body: the spool file goes away. */
    o = owner_run(NULL, 0, S(C_TXN "DATA\r\nSubject: half\r\n"));
    CHECK(o->has_file);
    CHECK(smtp_session_is_receiving_body(&o->session));
    smtp_session_timeout(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN R_354 R_421_TIMEOUT);
    CHECK(!o->has_file);
    CHECK(o->deliver_count == 0);
    owner_free(o);

    o = owner_run(NULL, 0, S(C_TXN "BDAT 100\r\nhalf"));
    CHECK(smtp_session_is_receiving_body(&o->session));
    smtp_session_timeout(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN R_421_TIMEOUT);
    CHECK(!o->has_file);
    owner_free(o);
}

static void
test_shutdown(void)
{
    /* Idle: 421 at once. */
    struct owner *o = owner_new(NULL, 0, false);
    smtp_session_shutdown(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_421_SHUTDOWN);
    CHECK(smtp_session_is_closing(&o->session));
    owner_free(o);
    o = owner_run(NULL, 0, S(C_EHLO));
    smtp_session_shutdown(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_EHLO R_421_SHUTDOWN);
    CHECK(smtp_session_is_closing(&o->session));
    owner_free(o);

    /* In a transaction: it finishes, then 421. */
    o = owner_run(NULL, 0, S(C_TXN));
    smtp_session_shutdown(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN);
    CHECK(!smtp_session_is_closing(&o->session));
    owner_drive(o, (const uint8_t *)S("RCPT TO:<c@local.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n"),
                SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_RCPT R_354 R_QUEUED R_421_SHUTDOWN);
    CHECK(smtp_session_is_closing(&o->session));
    CHECK(o->accepted_count == 1);
    owner_free(o);

    /* During a body. */
    o = owner_run(NULL, 0, S(C_TXN "BDAT 4\r\nabcd"));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S("BDAT 2 LAST\r\nefNOOP\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_BDAT_OK("4") R_QUEUED R_421_SHUTDOWN);
    CHECK_DELIVERED(o, TRACE_ONE "abcdef");
    owner_free(o);

    /* A refused message ends the transaction too. */
    o = owner_run(&config_size100, 0, S(C_TXN "DATA\r\n"));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S(X50 X50 "\r\n.\r\nNOOP\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN100 R_354 R_552_BODY R_421_SHUTDOWN);
    owner_free(o);

    /* RSET or EHLO ends it; the session is idle then, and the next command
     * gets 421. QUIT is always answered. */
    o = owner_run(NULL, 0, S(C_TXN));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S("RSET\r\nNOOP\r\nNOOP\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_OK R_421_SHUTDOWN);
    CHECK(smtp_session_is_closing(&o->session));
    CHECK(o->consumed == sizeof(C_TXN) - 1 + 12);
    owner_free(o);
    o = owner_run(NULL, 0, S(C_TXN "BDAT 2\r\nab"));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S(C_EHLO C_MAIL), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_BDAT_OK("2") R_EHLO R_421_SHUTDOWN);
    CHECK(o->deliver_count == 0);
    owner_free(o);
    o = owner_run(NULL, 0, S(C_TXN));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S("NOOP\r\nQUIT\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_OK R_BYE);
    owner_free(o);
    o = owner_run(NULL, 0, S(C_TXN));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S("RSET\r\nQUIT\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_TXN R_OK R_BYE);
    owner_free(o);

    /* A refused BDAT chunk being read is no transaction: once it is read,
     * the next command gets 421. */
    o = owner_run(NULL, 0, S(C_EHLO "BDAT 5\r\nab"));
    smtp_session_shutdown(&o->session);
    owner_drain(o);
    CHECK_REPLIES(o, R_EHLO);
    owner_drive(o, (const uint8_t *)S("cdeNOOP\r\nNOOP\r\n"), SIZE_MAX, SIZE_MAX);
    CHECK_REPLIES(o, R_EHLO R_503_MAIL R_421_SHUTDOWN);
    CHECK(smtp_session_is_closing(&o->session));
    owner_free(o);
    /* A chunk refused for want of recipients leaves the transaction open. */
    o = owner_run(NULL, 0, S(C_EHLO C_MAIL "RCPT TO:<unknown@local.test>\r\nBDAT 2\r\na"));
    smtp_session_shutdown(&o->session);
    owner_drive(o, (const uint8_t *)S("b" C_RCPT "DATA\r\nx\r\n.\r\nNOOP\r\n"), SIZE_MAX,
                SIZE_MAX);
    CHECK_REPLIES(o, R_EHLO R_MAIL "550 5.1.1 <unknown@local.test>: Recipient address rejected: "
                                   "User unknown in local recipient table\r\n" R_554_NORCPT R_RCPT
                                   R_354 R_QUEUED R_421_SHUTDOWN);
    CHECK(o->accepted_count == 1);
    owner_free(o);
}

/* ---- backpressure and the request discipline ------------------------------- */

static void
test_backpressure(void)
{
    enum { LINES = 1000 };
    struct bytes in = { 0 };
    for (int i = 0; i < LINES; i++) {
        bytes_append(&in, S(C_HELO));
    }
    struct owner *o = owner_new(NULL, 0, true);
    struct smtp_session *s = &o->session;
    size_t used = smtp_session_feed(s, in.ptr, in.len);
    CHECK(used < in.len);
    CHECK(used % (sizeof(C_HELO) - 1) == 0);
    CHECK(!smtp_session_wants_input(s));
    struct span out = smtp_session_output(s);
    CHECK(out.len > SMTP_SEND_HIGH_BYTES);
    CHECK(out.len <= SMTP_SEND_HIGH_BYTES + sizeof(R_HELO) - 1);
    CHECK(smtp_session_feed(s, in.ptr + used, in.len - used) == 0);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);

    /* Drain a byte at a time: input is wanted again at the high mark. */
    while (!smtp_session_wants_input(s)) {
        out = smtp_session_output(s);
        bytes_append(&o->out, out.ptr, 1);
        smtp_session_output_sent(s, 1);
    }
    CHECK(smtp_session_output(s).len == SMTP_SEND_HIGH_BYTES);

    /* The rest, draining only when stalled: nothing lost. */
    for (int round = 0; round < 100 && used < in.len; round++) {
        size_t n = smtp_session_feed(s, in.ptr + used, in.len - used);
        used += n;
        if (n == 0) {
            owner_drain(o);
        }
    }
    owner_drain(o);
    CHECK(used == in.len);
    struct bytes want = { 0 };
    bytes_append(&want, S(BANNER));
    for (int i = 0; i < LINES; i++) {
        bytes_append(&want, S(R_HELO));
    }
    CHECK_BYTES(o->out.ptr, o->out.len, want.ptr, want.len);
    owner_free(o);
    bytes_free(&in);
    bytes_free(&want);

    /* A long pipelined stream with transactions in it: with output drained
     * eagerly, lazily, whole or in pieces, the same replies and files. */
    in = (struct bytes){ 0 };
    for (int i = 0; i < 150; i++) {
        bytes_append(&in, S(C_EHLO));
    }
    bytes_append(&in, S(C_MAIL C_RCPT "DATA\r\nSubject: a\r\n\r\nbody\r\n.\r\n"));
    for (int i = 0; i < 150; i++) {
        bytes_append(&in, S("HELP\r\n" C_HELO));
    }
    bytes_append(&in, S(C_MAIL C_RCPT "BDAT 5 LAST\r\nhello"));
    for (int i = 0; i < 300; i++) {
        bytes_append(&in, S("RCPT TO:<bob@local.test>\r\n"));
    }
    bytes_append(&in, S("QUIT\r\n"));
    struct smtp_session_config config = config_default();
    config.junk_command_limit = 1000;
    config.error_limit = 1000;
    struct owner *ref = owner_run(&config, 0, in.ptr, in.len);
    CHECK(ref->accepted_count == 2);
    CHECK(smtp_session_is_closing(&ref->session));
    CHECK(ref->consumed == in.len);
    static const size_t steps[][2] = { { SIZE_MAX, SIZE_MAX }, { 1, 1 }, { 100, 7 },
                                       { 5000, 4096 } };
    for (size_t lazy = 0; lazy < 2; lazy++) {
        for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
            o = owner_new(&config, 0, lazy != 0);
            owner_drive(o, in.ptr, in.len, steps[k][0], steps[k][1]);
            CHECK(owner_same(ref, o));
            owner_free(o);
        }
    }
    owner_free(ref);
    bytes_free(&in);
}

static void
test_request_discipline(void)
{
    struct owner *o = owner_run(NULL, 0, S(C_TXN));
    struct smtp_session *s = &o->session;
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);

    /* DATA: the session asks for a spool file and takes nothing more. */
    static const char data_and_more[] = "DATA\r\nhi\r\n.\r\nNOOP\r\n";
    size_t used = smtp_session_feed(s, (const uint8_t *)data_and_more, sizeof(data_and_more) - 1);
    CHECK(used == 6);
    CHECK(s->request == SMTP_REQUEST_SPOOL_OPEN);
    CHECK(!smtp_session_wants_input(s));
    CHECK(!smtp_session_is_receiving_body(s));
    CHECK(smtp_session_feed(s, (const uint8_t *)data_and_more + used, 3) == 0);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_SPOOL_OPEN);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);
    CHECK(!smtp_session_wants_input(s));
    CHECK(smtp_session_feed(s, (const uint8_t *)data_and_more + used, 3) == 0);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN);
    smtp_session_spool_opened(s, 0, o->body, BODY_BUFFER_BYTES, QUEUE_ID, NOW);
    o->has_file = true;
    CHECK(smtp_session_wants_input(s));
    CHECK(smtp_session_is_receiving_body(s));
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN R_354);

    /* End of data: one write, then delivery, each answered before the next. */
    size_t n = smtp_session_feed(s, (const uint8_t *)data_and_more + used,
                                 sizeof(data_and_more) - 1 - used);
    CHECK(n == 7);
    used += n;
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_SPOOL_WRITE);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);
    struct span body = smtp_session_body(s);
    CHECK_LITERAL(body.ptr, body.len, TRACE_ONE "hi\r\n");
    CHECK(smtp_session_feed(s, (const uint8_t *)data_and_more + used, 6) == 0);
    smtp_session_spool_written(s, 0);
    CHECK(s->request == SMTP_REQUEST_DELIVER);
    CHECK(s->state == SMTP_STATE_DELIVER);
    CHECK(!smtp_session_wants_input(s));
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_DELIVER);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);
    CHECK(s->txn.body_bytes == sizeof(TRACE_ONE) - 1 + 4);
    /* The final reply ends the transaction (txn_abort once), and input is
     * wanted again. */
    unsigned aborts = o->abort_count;
    o->has_file = false;
    smtp_session_delivered(s, DELIVER_OK_LINE);
    CHECK(o->abort_count == aborts + 1);
    CHECK(smtp_session_wants_input(s));
    CHECK(smtp_session_feed(s, (const uint8_t *)data_and_more + used, 6) == 6);
    owner_drain(o);
    CHECK_REPLIES(o, R_TXN R_354 R_QUEUED R_OK);
    owner_free(o);

    /* BDAT: the chunk's bytes wait for the spool file. */
    o = owner_run(NULL, 0, S(C_TXN));
    s = &o->session;
    static const char bdat[] = "BDAT 5 LAST\r\nhelloNOOP\r\n";
    used = smtp_session_feed(s, (const uint8_t *)bdat, sizeof(bdat) - 1);
    CHECK(used == 13);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_SPOOL_OPEN);
    CHECK(smtp_session_feed(s, (const uint8_t *)bdat + used, 5) == 0);
    smtp_session_spool_opened(s, 0, o->body, BODY_BUFFER_BYTES, QUEUE_ID, NOW);
    o->has_file = true;
    CHECK(smtp_session_is_receiving_body(s));
    CHECK(smtp_session_feed(s, (const uint8_t *)bdat + used, sizeof(bdat) - 1 - used) == 5);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_SPOOL_WRITE);
    smtp_session_spool_written(s, 0);
    CHECK(smtp_session_take_request(s) == SMTP_REQUEST_DELIVER);
    CHECK(s->txn.is_bdat);
    /* Session end while the owner delivers: the message is the owner's, so
     * no txn_abort for it. */
    aborts = o->abort_count;
    smtp_session_finish(s);
    CHECK(o->abort_count == aborts);
    owner_release(o);
}

static void
test_state_names(void)
{
    CHECK_STR(smtp_state_name(SMTP_STATE_CONNECTED), "CONNECTED");
    CHECK_STR(smtp_state_name(SMTP_STATE_READY), "READY");
    CHECK_STR(smtp_state_name(SMTP_STATE_RCPT), "RCPT");
    CHECK_STR(smtp_state_name(SMTP_STATE_SPOOL_OPEN), "SPOOL_OPEN");
    CHECK_STR(smtp_state_name(SMTP_STATE_DATA), "DATA");
    CHECK_STR(smtp_state_name(SMTP_STATE_BDAT), "BDAT");
    CHECK_STR(smtp_state_name(SMTP_STATE_BDAT_NEXT), "BDAT_NEXT");
    CHECK_STR(smtp_state_name(SMTP_STATE_DELIVER), "DELIVER");
    CHECK_STR(smtp_state_name(SMTP_STATE_CLOSING), "CLOSING");
    CHECK_STR(smtp_state_name(SMTP_STATE_COUNT), "?");

    struct owner *o = owner_new(NULL, 0, false);
    CHECK(o->session.state == SMTP_STATE_CONNECTED);
    CHECK(smtp_session_wants_input(&o->session));
    CHECK(!smtp_session_is_closing(&o->session));
    CHECK(!smtp_session_is_receiving_body(&o->session));
    CHECK_LITERAL(o->out.ptr, o->out.len, BANNER);
    CHECK(smtp_session_output(&o->session).len == 0);
    owner_free(o);
}

int
main(void)
{
    test_state_names();
    test_session_cases();
    test_spool_trace_headers();
    test_starttls();
    test_auth();
    test_spool_long_helo();
    test_spool_dot_stuffing();
    test_spool_bare_lf_and_cr();
    test_spool_bdat_exact();
    test_spool_large();
    test_spool_buffer_edges();
    test_spool_held_bytes_at_edge();
    test_line_limit();
    test_huge_line();
    test_size_limit();
    test_recipient_limit();
    test_error_limit();
    test_junk_limit();
    test_txn_fields();
    test_smuggling();
    test_timeout();
    test_shutdown();
    test_backpressure();
    test_request_discipline();
    UNIT_DONE();
}
