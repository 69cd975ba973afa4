/*
 * tests/unit/test_smtp_session_lmtp.c - the SMTP session in LMTP mode
 * (RFC 2033), driven as its owner drives it.
 *
 * A fake owner answers every request at once (spool file in memory, queue
 * id "TESTQID", a fixed clock) and decides each accepted recipient's
 * outcome from its local part: "full..." -> 452 4.2.2, "reject..." ->
 * 550 5.7.1, anything else 250; at RCPT, "unknown..." -> 550 5.1.1 and
 * domain remote.test -> 554 5.7.1. Each transcript is a client byte stream
 * and the exact reply bytes after the banner, run whole, one byte at a
 * time, and with output drained only when the session stalls on it. Further
 * tests cover one reply per accepted recipient in RCPT order (also 1000 of
 * them through the 4 KiB output buffer), the same refusal for every
 * recipient, the trace headers, pipelining past the final dot, the client
 * leaving half-way through the replies, and that SMTP mode is untouched.
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

#define HOST "lmtp.test"
#define CLIENT_IP "127.0.0.1"
#define QUEUE_ID "TESTQID"
#define NOW ((time_t)1700000000)
#define NOW_TEXT "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)"
#define BODY_BUFFER_BYTES 65536
#define SIZE_LIMIT 1000000
#define RCPTS_MAX 1000

#define FAIL_OPEN 0x1u
#define FAIL_WRITE 0x2u

#define BANNER "220 " HOST " LMTP toaster\r\n"
#define C_LHLO "LHLO front.test\r\n"
#define C_MAIL "MAIL FROM:<alice@sender.test>\r\n"
#define R_LHLO                                                                       \
    "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n"         \
    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
#define R_MAIL "250 2.1.0 Ok\r\n"
#define R_RCPT "250 2.1.5 Ok\r\n"
#define R_354 "354 End data with <CR><LF>.<CR><LF>\r\n"
#define R_OK(a) "250 2.0.0 <" a "> Ok: delivered\r\n"
#define R_FULL(a) "452 4.2.2 <" a "> Mailbox full\r\n"
#define R_REJECT(a) "550 5.7.1 <" a "> Rejected by the user's script\r\n"
#define R_UNKNOWN(a)                                                                 \
    "550 5.1.1 <" a ">: Recipient address rejected: User unknown in local recipient table\r\n"
#define R_RELAY(a)                                                                   \
    "550 5.1.1 <" a ">: Recipient address rejected: not a local recipient (LMTP does not "  \
    "relay)\r\n"
#define R_NO_LHLO "500 5.5.1 Error: this is LMTP, send LHLO\r\n"
#define R_503_NORCPT "503 5.5.1 Error: no valid recipients\r\n"
#define R_552 "552 5.3.4 Error: message file too big\r\n"
#define R_451_WRITE "451 4.3.0 Error: queue file write error\r\n"
#define R_BYE "221 2.0.0 Bye\r\n"

#define CHECK_LITERAL(got, got_len, literal)                                          \
    CHECK_BYTES((got), (got_len), (literal), sizeof(literal) - 1)

/* ---- a growable byte buffer ------------------------------------------------ */

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

/* ---- the fake owner ---------------------------------------------------------- */

struct owner {
    struct smtp_session        session;
    struct smtp_session_config config;
    unsigned                   fail;
    bool                       is_lazy_drain;
    bool                       is_deliver_held; /* answer DELIVER only when told */
    uint8_t                   *body;
    struct bytes               out;
    struct bytes               file;
    bool                       has_file;
    struct bytes               delivered;
    char                       rcpts[RCPTS_MAX][64]; /* accepted, in RCPT order */
    uint32_t                   rcpt_count;
    uint32_t                   next_reply;           /* the index rcpt_reply must be asked next */
    unsigned                   deliver_count;
    unsigned                   abort_count;
    unsigned                   violations;
    size_t                     consumed;
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

static enum smtp_rcpt_verdict
owner_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    struct owner *o = owner;
    const struct smtp_path *path = request->path;
    if (span_starts_with(path->local_part, "unknown")) {
        return SMTP_RCPT_UNKNOWN_USER;
    }
    if (span_equals_nocase(path->domain, "remote.test")) {
        return SMTP_RCPT_RELAY_DENIED;
    }
    if (o->rcpt_count == RCPTS_MAX || path->mailbox.len >= sizeof(o->rcpts[0])) {
        return SMTP_RCPT_NO_RESOURCES;
    }
    (void)snprintf(o->rcpts[o->rcpt_count++], sizeof(o->rcpts[0]), "%.*s",
                   (int)path->mailbox.len, path->mailbox.ptr);
    return SMTP_RCPT_ACCEPT;
}

static void
owner_txn_abort(void *owner)
{
    struct owner *o = owner;
    o->abort_count++;
    o->has_file = false;
    o->file.len = 0;
    o->rcpt_count = 0;
    o->next_reply = 0;
}

static void
owner_rcpt_reply(void *owner, uint32_t index, char *reply, size_t reply_bytes)
{
    struct owner *o = owner;
    VIOLATION_UNLESS(o, reply_bytes == SMTP_REPLY_LINE_BYTES_MAX);
    VIOLATION_UNLESS(o, index == o->next_reply);
    VIOLATION_UNLESS(o, index < o->rcpt_count);
    o->next_reply = index + 1;
    const char *rcpt = index < o->rcpt_count ? o->rcpts[index] : "?";
    if (strncmp(rcpt, "full", 4) == 0) {
        (void)snprintf(reply, reply_bytes, "452 4.2.2 <%s> Mailbox full", rcpt);
    } else if (strncmp(rcpt, "reject", 6) == 0) {
        (void)snprintf(reply, reply_bytes, "550 5.7.1 <%s> Rejected by the user's script", rcpt);
    } else {
        (void)snprintf(reply, reply_bytes, "250 2.0.0 <%s> Ok: delivered", rcpt);
    }
}

static const struct smtp_session_callbacks owner_callbacks = {
    .rcpt = owner_rcpt,
    .txn_abort = owner_txn_abort,
    .rcpt_reply = owner_rcpt_reply,
};

static struct smtp_session_config
config_lmtp(void)
{
    return (struct smtp_session_config){
        .hostname = HOST,
        .message_size_limit = SIZE_LIMIT,
        .recipient_limit = SMTP_RCPT_DEFAULT,
        .error_limit = SMTP_ERRORS_DEFAULT,
        .junk_command_limit = SMTP_JUNK_COMMANDS_DEFAULT,
        .is_lmtp = true,
    };
}

/* Send everything queued; returns how many bytes went. */
static size_t
owner_drain(struct owner *o)
{
    struct span out = smtp_session_output(&o->session);
    bytes_append(&o->out, out.ptr, out.len);
    smtp_session_output_sent(&o->session, out.len);
    return out.len;
}

static struct owner *
owner_new(const struct smtp_session_config *config, const char *client, bool is_lazy_drain)
{
    struct owner *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        abort();
    }
    o->config = config != NULL ? *config : config_lmtp();
    o->is_lazy_drain = is_lazy_drain;
    o->body = malloc(BODY_BUFFER_BYTES);
    if (o->body == NULL) {
        abort();
    }
    smtp_session_init(&o->session, &o->config, &owner_callbacks, o, client);
    owner_drain(o);
    return o;
}

static void
owner_free(struct owner *o)
{
    smtp_session_finish(&o->session);
    VIOLATION_UNLESS(o, !o->has_file);
    CHECK(o->violations == 0);
    free(o->out.ptr);
    free(o->file.ptr);
    free(o->delivered.ptr);
    free(o->body);
    free(o);
}

/* Answer a held DELIVER now. */
static void
owner_deliver_now(struct owner *o)
{
    smtp_session_delivered_each(&o->session);
}

static unsigned
owner_serve(struct owner *o)
{
    struct smtp_session *s = &o->session;
    for (unsigned round = 0; round < 16; round++) {
        enum smtp_request what = smtp_session_take_request(s);
        if (what == SMTP_REQUEST_NONE) {
            return round;
        }
        VIOLATION_UNLESS(o, !smtp_session_wants_input(s));
        switch (what) {
        case SMTP_REQUEST_SPOOL_OPEN:
            VIOLATION_UNLESS(o, !o->has_file);
            if (o->fail & FAIL_OPEN) {
                smtp_session_spool_opened(s, -ENOSPC, NULL, 0, NULL, NOW);
            } else {
                o->has_file = true;
                o->file.len = 0;
                smtp_session_spool_opened(s, 0, o->body, BODY_BUFFER_BYTES, QUEUE_ID, NOW);
            }
            break;
        case SMTP_REQUEST_SPOOL_WRITE: {
            struct span body = smtp_session_body(s);
            if (o->fail & FAIL_WRITE) {
                smtp_session_spool_written(s, -EIO);
            } else {
                bytes_append(&o->file, body.ptr, body.len);
                smtp_session_spool_written(s, 0);
            }
            break;
        }
        case SMTP_REQUEST_DELIVER:
            o->deliver_count++;
            VIOLATION_UNLESS(o, s->txn.rcpt_count == o->rcpt_count);
            VIOLATION_UNLESS(o, s->txn.body_bytes == o->file.len);
            bytes_append(&o->delivered, o->file.ptr, o->file.len);
            o->has_file = false;
            o->file.len = 0;
            if (o->is_deliver_held) {
                return round + 1;
            }
            smtp_session_delivered_each(s);
            break;
        default:
            VIOLATION_UNLESS(o, false); /* no AUTH, no STARTTLS in LMTP */
            return round;
        }
        if (!o->is_lazy_drain) {
            owner_drain(o);
        }
    }
    VIOLATION_UNLESS(o, false);
    return 16;
}

/* Feed in[0..len) step bytes at a time (each an exact heap copy), serving
 * requests and draining output as the reactor would. */
static void
owner_drive(struct owner *o, const uint8_t *in, size_t len, size_t step)
{
    struct smtp_session *s = &o->session;
    size_t pos = 0;
    while (pos < len && !smtp_session_is_closing(s)) {
        size_t n = len - pos < step ? len - pos : step;
        uint8_t *chunk = malloc(n);
        if (chunk == NULL) {
            abort();
        }
        memcpy(chunk, in + pos, n);
        size_t off = 0;
        unsigned stalls = 0;
        while (off < n && !smtp_session_is_closing(s)) {
            size_t used = smtp_session_feed(s, chunk + off, n - off);
            off += used;
            unsigned served = owner_serve(o);
            size_t drained = 0;
            if (!o->is_lazy_drain ||
                (!smtp_session_wants_input(s) && !smtp_session_is_closing(s))) {
                /* Lazy: only when the session stalls on its output. */
                drained = owner_drain(o);
            }
            if (used > 0 || served > 0 || drained > 0) {
                stalls = 0;
                continue;
            }
            if (o->is_deliver_held && s->state == SMTP_STATE_DELIVER) {
                break; /* the test answers later */
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

/* ---- transcripts ------------------------------------------------------------- */

struct lmtp_case {
    const char *name;
    const char *in;
    const char *want;
    unsigned    fail;
    uint64_t    size_limit; /* 0: SIZE_LIMIT */
};

static const struct lmtp_case cases[] = {
    { "lhlo", C_LHLO "QUIT\r\n", R_LHLO R_BYE, 0, 0 },
    { "lhlo lower case", "lhlo front.test\r\n", R_LHLO, 0, 0 },
    { "lhlo without a name", "LHLO\r\n", "501 5.5.4 Syntax: LHLO hostname\r\n", 0, 0 },
    { "ehlo and helo refused", "EHLO front.test\r\nHELO front.test\r\n" C_LHLO,
      R_NO_LHLO R_NO_LHLO R_LHLO, 0, 0 },
    { "lhlox is no lhlo", "LHLOX front.test\r\n", "500 5.5.2 Error: command not recognized\r\n",
      0, 0 },
    { "mail before lhlo", C_MAIL, "503 5.5.1 Error: send LHLO first\r\n", 0, 0 },
    { "no starttls, no auth", C_LHLO "STARTTLS\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
      R_LHLO "502 5.5.1 Error: command not implemented\r\n"
             "503 5.5.1 Error: authentication not enabled\r\n",
      0, 0 },
    { "three recipients, one refused at rcpt, one full",
      C_LHLO C_MAIL "RCPT TO:<bob@local.test>\r\nRCPT TO:<unknown@local.test>\r\n"
      "RCPT TO:<full@local.test>\r\nRCPT TO:<carol@local.test>\r\nDATA\r\nHi\r\n.\r\n",
      R_LHLO R_MAIL R_RCPT R_UNKNOWN("unknown@local.test") R_RCPT R_RCPT R_354
      R_OK("bob@local.test") R_FULL("full@local.test") R_OK("carol@local.test"),
      0, 0 },
    { "remote recipient refused",
      C_LHLO C_MAIL "RCPT TO:<x@remote.test>\r\nRCPT TO:<reject@local.test>\r\n"
      "DATA\r\nHi\r\n.\r\n",
      R_LHLO R_MAIL R_RELAY("x@remote.test") R_RCPT R_354 R_REJECT("reject@local.test"),
      0, 0 },
    { "data without recipients is 503",
      C_LHLO C_MAIL "RCPT TO:<unknown@local.test>\r\nDATA\r\n",
      R_LHLO R_MAIL R_UNKNOWN("unknown@local.test") R_503_NORCPT, 0, 0 },
    { "bdat without recipients is 503 after its bytes",
      C_LHLO C_MAIL "BDAT 4 LAST\r\nabcdNOOP\r\n",
      R_LHLO R_MAIL R_503_NORCPT "250 2.0.0 Ok\r\n", 0, 0 },
    { "bdat: one reply per chunk, per recipient at LAST",
      C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<full@local.test>\r\n"
      "BDAT 4\r\nHi\r\nBDAT 0 LAST\r\n",
      R_LHLO R_MAIL R_RCPT R_RCPT "250 2.0.0 Ok: 4 octets received\r\n" R_OK("a@local.test")
      R_FULL("full@local.test"),
      0, 0 },
    { "pipelined: the next transaction waits for every reply",
      C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n"
      "x\r\n.\r\n" C_MAIL "RCPT TO:<c@local.test>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n",
      R_LHLO R_MAIL R_RCPT R_RCPT R_354 R_OK("a@local.test") R_OK("b@local.test") R_MAIL
      R_RCPT R_354 R_OK("c@local.test") R_BYE,
      0, 0 },
    { "too big: the same 552 for every recipient",
      C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n"
      "0123456789012345678901234567890123456789\r\n.\r\nNOOP\r\n",
      R_LHLO "" "250 2.1.0 Ok\r\n" R_RCPT R_RCPT R_354 R_552 R_552 "250 2.0.0 Ok\r\n",
      0, 20 },
    { "spool write error: 451 for every recipient",
      C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nRCPT TO:<c@local.test>\r\n"
      "DATA\r\nx\r\n.\r\n",
      R_LHLO R_MAIL R_RCPT R_RCPT R_RCPT R_354 R_451_WRITE R_451_WRITE R_451_WRITE,
      FAIL_WRITE, 0 },
    { "spool open error at DATA: one 451 (the DATA command failed)",
      C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\nDATA\r\n",
      R_LHLO R_MAIL R_RCPT R_RCPT
      "451 4.3.0 Error: cannot create queue file, try again later\r\n",
      FAIL_OPEN, 0 },
    { "help", C_LHLO "HELP\r\n",
      R_LHLO "214-2.0.0 Commands supported:\r\n"
             "214-2.0.0   LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP\r\n"
             "214 2.0.0 See RFC 2033\r\n",
      0, 0 },
};

static void
run_case(const struct lmtp_case *c, size_t step, bool is_lazy)
{
    struct smtp_session_config config = config_lmtp();
    if (c->size_limit != 0) {
        config.message_size_limit = c->size_limit;
    }
    struct owner *o = owner_new(&config, CLIENT_IP, is_lazy);
    o->fail = c->fail;
    size_t len = strlen(c->in);
    owner_drive(o, (const uint8_t *)c->in, len, step);
    if (c->size_limit != 0) {
        /* The LHLO reply names the limit: compare past it. */
        struct span got = owner_replies(o);
        const char *want = c->want;
        const char *got_tail = memchr(got.ptr, 'C', got.len); /* "CHUNKING" */
        const char *want_tail = strchr(want, 'C');
        CHECK(got_tail != NULL && want_tail != NULL);
        if (got_tail != NULL && want_tail != NULL) {
            CHECK_BYTES(got_tail, got.len - (size_t)(got_tail - got.ptr), want_tail,
                        strlen(want_tail));
        }
    } else {
        struct span got = owner_replies(o);
        if (got.len != strlen(c->want) || memcmp(got.ptr, c->want, got.len) != 0) {
            (void)fprintf(stderr, "case '%s' (step %zu, lazy %d):\n", c->name, step, is_lazy);
        }
        CHECK_REPLIES(o, c->want);
    }
    CHECK(o->consumed == len || smtp_session_is_closing(&o->session));
    owner_free(o);
}

static void
test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cases[i], strlen(cases[i].in), false);
        run_case(&cases[i], 1, false);
        run_case(&cases[i], 7, true);
    }
}

/* ---- spooled bytes -------------------------------------------------------------- */

static void
test_trace_headers(void)
{
    static const char in[] = C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\n"
                             "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
                             "MAIL FROM:<> SMTPUTF8\r\nRCPT TO:<c@local.test>\r\n"
                             "DATA\r\nx\r\n.\r\n";
    /* TCP peer: its address; several recipients: no "for". */
    struct owner *o = owner_new(NULL, CLIENT_IP, false);
    owner_drive(o, (const uint8_t *)in, sizeof(in) - 1, sizeof(in) - 1);
    static const char want[] =
        "Return-Path: <alice@sender.test>\r\n"
        "Received: from front.test ([" CLIENT_IP "])\r\n"
        "\tby " HOST " (toaster) with LMTP id " QUEUE_ID ";\r\n"
        "\t" NOW_TEXT "\r\n"
        "Subject: x\r\n\r\nbody\r\n"
        "Return-Path: <>\r\n"
        "Received: from front.test ([" CLIENT_IP "])\r\n"
        "\tby " HOST " (toaster) with UTF8LMTP id " QUEUE_ID "\r\n\tfor <c@local.test>;\r\n"
        "\t" NOW_TEXT "\r\n"
        "x\r\n";
    CHECK_LITERAL(o->delivered.ptr, o->delivered.len, want);
    CHECK(o->deliver_count == 2);
    owner_free(o);

    /* A Unix socket peer: no address literal. */
    static const char in2[] = C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nDATA\r\nx\r\n.\r\n";
    o = owner_new(NULL, "unix", false);
    owner_drive(o, (const uint8_t *)in2, sizeof(in2) - 1, 1);
    static const char want2[] =
        "Return-Path: <alice@sender.test>\r\n"
        "Received: from front.test\r\n"
        "\tby " HOST " (toaster) with LMTP id " QUEUE_ID "\r\n\tfor <a@local.test>;\r\n"
        "\t" NOW_TEXT "\r\n"
        "x\r\n";
    CHECK_LITERAL(o->delivered.ptr, o->delivered.len, want2);
    owner_free(o);
}

/* ---- many recipients through the small output buffer ------------------------ */

static void
test_many_recipients(bool is_lazy, size_t step)
{
    struct bytes in = { 0 };
    struct bytes want = { 0 };
    bytes_append(&in, C_LHLO C_MAIL, strlen(C_LHLO C_MAIL));
    bytes_append(&want, R_LHLO R_MAIL, strlen(R_LHLO R_MAIL));
    char line[128];
    for (int i = 0; i < SMTP_RCPT_DEFAULT; i++) {
        int n = snprintf(line, sizeof(line), "RCPT TO:<%s%04d@local.test>\r\n",
                         i % 7 == 3 ? "full" : "user", i);
        bytes_append(&in, line, (size_t)n);
        bytes_append(&want, R_RCPT, strlen(R_RCPT));
    }
    /* One past the limit: 452, and not counted. */
    bytes_append(&in, "RCPT TO:<extra@local.test>\r\n", 28);
    bytes_append(&want, "452 4.5.3 Error: too many recipients\r\n", 38);
    bytes_append(&in, "DATA\r\nhello\r\n.\r\nNOOP\r\n", 22);
    bytes_append(&want, R_354, strlen(R_354));
    for (int i = 0; i < SMTP_RCPT_DEFAULT; i++) {
        int n = i % 7 == 3
                    ? snprintf(line, sizeof(line), "452 4.2.2 <full%04d@local.test> Mailbox full\r\n", i)
                    : snprintf(line, sizeof(line), "250 2.0.0 <user%04d@local.test> Ok: delivered\r\n", i);
        bytes_append(&want, line, (size_t)n);
    }
    bytes_append(&want, "250 2.0.0 Ok\r\n", 14);
    struct owner *o = owner_new(NULL, CLIENT_IP, is_lazy);
    owner_drive(o, in.ptr, in.len, step);
    struct span got = owner_replies(o);
    CHECK_BYTES(got.ptr, got.len, want.ptr, want.len);
    CHECK(o->consumed == in.len);
    CHECK(o->deliver_count == 1);
    CHECK(o->session.out_len == 0);
    owner_free(o);
    free(in.ptr);
    free(want.ptr);
}

/* The output never passes its high mark while the replies go out: the
 * session hands them out only as the owner sends. */
static void
test_replies_wait_for_room(void)
{
    struct owner *o = owner_new(NULL, CLIENT_IP, true);
    o->is_deliver_held = true;
    static const char head[] = C_LHLO C_MAIL;
    owner_drive(o, (const uint8_t *)head, sizeof(head) - 1, sizeof(head) - 1);
    char line[128];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(line, sizeof(line), "RCPT TO:<u%03d@local.test>\r\n", i);
        owner_drive(o, (const uint8_t *)line, (size_t)n, (size_t)n);
    }
    static const char data[] = "DATA\r\nx\r\n.\r\n";
    owner_drive(o, (const uint8_t *)data, sizeof(data) - 1, sizeof(data) - 1);
    CHECK(o->session.state == SMTP_STATE_DELIVER);
    size_t before = o->out.len;
    owner_deliver_now(o);
    /* Some replies are queued, but not all 200, and within the bound. */
    CHECK(o->session.out_len > 0);
    CHECK(o->session.out_len <= SMTP_SEND_HIGH_BYTES);
    CHECK(o->next_reply > 0 && o->next_reply < 200);
    CHECK(!smtp_session_wants_input(&o->session));
    unsigned rounds = 0;
    while (o->session.state == SMTP_STATE_DELIVER && rounds++ < 1000) {
        /* Send a little at a time, as a slow socket would. */
        struct span out = smtp_session_output(&o->session);
        size_t n = out.len < 100 ? out.len : 100;
        bytes_append(&o->out, out.ptr, n);
        smtp_session_output_sent(&o->session, n);
        CHECK(o->session.out_len <= SMTP_SEND_HIGH_BYTES);
    }
    owner_drain(o);
    CHECK(o->session.state == SMTP_STATE_READY);
    CHECK(o->next_reply == 0); /* txn_abort after the last reply reset it */
    CHECK(o->abort_count >= 1);
    /* 200 replies went out after the 354. */
    size_t count = 0;
    for (size_t i = before; i + 1 < o->out.len; i++) {
        if (o->out.ptr[i] == '\r' && o->out.ptr[i + 1] == '\n') {
            count++;
        }
    }
    CHECK(count == 200);
    owner_free(o);
}

/* The client leaves half-way through the replies: nothing more is asked,
 * and the owner hears the end (finish during DELIVER is the owner's). */
static void
test_client_leaves_during_replies(void)
{
    struct owner *o = owner_new(NULL, CLIENT_IP, true);
    o->is_deliver_held = true;
    struct bytes in = { 0 };
    bytes_append(&in, C_LHLO C_MAIL, strlen(C_LHLO C_MAIL));
    char line[128];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(line, sizeof(line), "RCPT TO:<u%03d@local.test>\r\n", i);
        bytes_append(&in, line, (size_t)n);
    }
    bytes_append(&in, "DATA\r\nx\r\n.\r\n", 12);
    owner_drive(o, in.ptr, in.len, in.len);
    owner_deliver_now(o);
    uint32_t asked = o->next_reply;
    CHECK(asked > 0 && asked < 300);
    smtp_session_finish(&o->session);
    smtp_session_output_sent(&o->session, smtp_session_output(&o->session).len);
    CHECK(o->next_reply == asked); /* nothing asked after the end */
    free(in.ptr);
    o->is_deliver_held = false;
    CHECK(o->violations == 0);
    free(o->out.ptr);
    free(o->file.ptr);
    free(o->delivered.ptr);
    free(o->body);
    free(o);
}

/* A timeout while replies are pending: 421 and close, nothing more asked. */
static void
test_timeout_during_replies(void)
{
    struct owner *o = owner_new(NULL, CLIENT_IP, true);
    o->is_deliver_held = true;
    struct bytes in = { 0 };
    bytes_append(&in, C_LHLO C_MAIL, strlen(C_LHLO C_MAIL));
    char line[128];
    for (int i = 0; i < 300; i++) {
        int n = snprintf(line, sizeof(line), "RCPT TO:<u%03d@local.test>\r\n", i);
        bytes_append(&in, line, (size_t)n);
    }
    bytes_append(&in, "DATA\r\nx\r\n.\r\n", 12);
    owner_drive(o, in.ptr, in.len, in.len);
    owner_deliver_now(o);
    uint32_t asked = o->next_reply;
    smtp_session_timeout(&o->session);
    CHECK(smtp_session_is_closing(&o->session));
    owner_drain(o);
    CHECK(o->next_reply == asked);
    CHECK(bytes_contains(&o->out, "421 4.4.2 " HOST " Error: timeout exceeded\r\n"));
    free(in.ptr);
    CHECK(o->violations == 0);
    free(o->out.ptr);
    free(o->file.ptr);
    free(o->delivered.ptr);
    free(o->body);
    free(o);
}

/* A refusal of the session's own (too big) counts once against the error
 * budget, however many recipients hear it. */
static void
test_refusal_counts_once(void)
{
    struct smtp_session_config config = config_lmtp();
    config.message_size_limit = 5;
    config.error_limit = 2;
    struct owner *o = owner_new(&config, CLIENT_IP, false);
    static const char in[] = C_LHLO C_MAIL "RCPT TO:<a@local.test>\r\nRCPT TO:<b@local.test>\r\n"
                             "RCPT TO:<c@local.test>\r\nDATA\r\n0123456789\r\n.\r\nNOOP\r\n";
    owner_drive(o, (const uint8_t *)in, sizeof(in) - 1, 3);
    CHECK(o->session.error_count == 1);
    CHECK(!smtp_session_is_closing(&o->session));
    CHECK(bytes_contains(&o->out, R_552 R_552 R_552 "250 2.0.0 Ok\r\n"));
    CHECK(o->deliver_count == 0);
    owner_free(o);
}

/* SMTP mode is untouched by the LMTP additions: EHLO still works, LHLO is
 * unknown there, and DATA without recipients stays 554. */
static void
test_smtp_mode_unchanged(void)
{
    struct smtp_session_config config = config_lmtp();
    config.is_lmtp = false;
    struct owner *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        abort();
    }
    o->config = config;
    o->body = malloc(BODY_BUFFER_BYTES);
    if (o->body == NULL) {
        abort();
    }
    smtp_session_init(&o->session, &o->config, &owner_callbacks, o, CLIENT_IP);
    static const char in[] = "LHLO x\r\nEHLO x\r\nMAIL FROM:<>\r\nDATA\r\n";
    owner_drive(o, (const uint8_t *)in, sizeof(in) - 1, sizeof(in) - 1);
    static const char want[] = "220 " HOST " ESMTP toaster\r\n"
                               "500 5.5.2 Error: command not recognized\r\n"
                               "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"
                               "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
                               "250-CHUNKING\r\n250 DSN\r\n"
                               "250 2.1.0 Ok\r\n"
                               "554 5.5.1 Error: no valid recipients\r\n";
    CHECK_LITERAL(o->out.ptr, o->out.len, want);
    owner_free(o);
}

int
main(void)
{
    test_cases();
    test_trace_headers();
    test_many_recipients(false, 1 << 20);
    test_many_recipients(true, 1 << 20);
    test_many_recipients(false, 13);
    test_replies_wait_for_room();
    test_client_leaves_during_replies();
    test_timeout_during_replies();
    test_refusal_counts_once();
    test_smtp_mode_unchanged();
    UNIT_DONE();
}
