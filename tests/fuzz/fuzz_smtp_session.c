/*
 * tests/fuzz/fuzz_smtp_session.c - libFuzzer harness for the SMTP session
 * state machine, driven the way its owner drives it.
 *
 * The first four input bytes choose the run; the rest is what the client
 * sends.
 *   byte 0: bits 0-2 make every second spool open / spool write / delivery
 *           fail (-ENOSPC, -EIO, a 451 reply); bit 3 sets reject_bare_lf;
 *           bit 4 selects small limits (size 300, 3 recipients, 5 errors,
 *           5 junk commands); bits 5-7 choose an event: 4 timeout,
 *           5 shutdown, 6 shutdown then timeout, else none.
 *   byte 1: bits 0-6 the piece size for the split runs (0: one piece);
 *           bit 7 drains output lazily in the run with the event too.
 *   byte 2: where in the input the event happens (a fraction of it).
 *   byte 3: the body buffer's size, 2 * SMTP_LINE_BYTES_MAX (the least the
 *           session accepts) plus 8 bytes per unit, so that bodies of a few
 *           KiB already need several spool writes.
 *
 * A fake owner answers every request at once (an in-memory spool file, a
 * fixed queue id and clock) and decides recipients from the same small
 * table as the unit test. The input runs three times: whole with output
 * drained at once; in pieces with output drained only when the session
 * stalls on it (both must give the same replies, the same delivered files
 * and the same counters); and in pieces with the event (a timeout fires
 * only while the session wants input, as the reactor's receive timer
 * does). Every run checks:
 * at most one request outstanding and none left unanswered, no input taken
 * while a request is out or output is over the high mark, never more
 * consumed than fed, all input consumed unless closing, replies well formed
 * (3 digits, ' ' or '-', CRLF, continuation lines with one code, 220
 * banner first), one "queued as" reply per accepted delivery, delivered
 * files with trace headers, CRLF line ends and body_bytes equal to their
 * size, and no spool file left after the session ends. Loops are bounded,
 * and a session that stops taking input for no reason is a failure. A
 * broken property aborts.
 *
 * Build: clang -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -I. \
 *   proto/smtp/smtp_session.c proto/smtp/smtp_parser.c proto/smtp/smtp_body.c \
 *   core/assertions.c core/sasl.c tests/fuzz/fuzz_smtp_session.c
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/smtp/smtp_session.h"
#include "tests/fuzz/fuzz_check.h"

#define HOST "mx.test"
#define QUEUE_ID "TESTQID"
#define NOW ((time_t)1700000000)
#define BODY_BUFFER_BYTES_MIN (2 * SMTP_LINE_BYTES_MAX)
#define DELIVER_OK_LINE "250 2.0.0 Ok: queued as " QUEUE_ID
#define DELIVER_FAIL_LINE "451 4.3.0 Error: cannot store the message, try again later"

#define FAIL_OPEN 0x1u
#define FAIL_WRITE 0x2u
#define FAIL_DELIVER 0x4u
#define OPT_BARE_LF 0x8u
#define OPT_SMALL 0x10u
#define OPT_SUBMISSION 0x20u /* AUTH offered (secure transport); else STARTTLS offered */

enum event { EVENT_NONE, EVENT_TIMEOUT, EVENT_SHUTDOWN, EVENT_SHUTDOWN_TIMEOUT };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        size_t cap = b->cap > 0 ? b->cap : 1024;
        while (cap < b->len + n) {
            cap *= 2;
        }
        uint8_t *grown = realloc(b->ptr, cap);
        FUZZ_CHECK(grown != NULL);
        b->ptr = grown;
        b->cap = cap;
    }
    memcpy(b->ptr + b->len, p, n);
    b->len += n;
}

struct owner {
    struct smtp_session        session;
    struct smtp_session_config config;
    unsigned                   fail;
    bool                       is_lazy_drain;
    uint8_t                   *body;          /* body_capacity bytes, an exact heap block */
    size_t                     body_capacity;
    struct bytes               out;
    struct bytes               file;
    bool                       has_file;
    struct bytes               delivered;
    unsigned                   open_count;
    unsigned                   write_count;
    unsigned                   deliver_count;
    unsigned                   accepted_count;
    unsigned                   abort_count;
    unsigned                   auth_count;
    size_t                     consumed;
    bool                       is_timed_out;
};

static bool
span_starts_with(struct span s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.ptr, prefix, n) == 0;
}

static enum smtp_rcpt_verdict
owner_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    (void)owner;
    const struct smtp_path *path = request->path;
    FUZZ_CHECK(!path->is_null);
    FUZZ_CHECK(path->mailbox.len > 0 && path->mailbox.len <= SMTP_ADDRESS_BYTES_MAX);
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

static const struct smtp_session_callbacks owner_callbacks = {
    .rcpt = owner_rcpt,
    .txn_abort = owner_txn_abort,
};

static void
owner_drain(struct owner *o)
{
    struct span out = smtp_session_output(&o->session);
    FUZZ_CHECK(out.len <= SMTP_SEND_BUFFER_BYTES);
    bytes_append(&o->out, out.ptr, out.len);
    smtp_session_output_sent(&o->session, out.len);
}

static void
owner_init(struct owner *o, unsigned options, bool is_lazy_drain, size_t body_capacity)
{
    memset(o, 0, sizeof(*o));
    o->body_capacity = body_capacity;
    o->fail = options & (FAIL_OPEN | FAIL_WRITE | FAIL_DELIVER);
    o->is_lazy_drain = is_lazy_drain;
    bool is_small = (options & OPT_SMALL) != 0;
    o->config = (struct smtp_session_config){
        .hostname = HOST,
        .message_size_limit = is_small ? 300 : 1000000,
        .recipient_limit = is_small ? 3 : SMTP_RCPT_DEFAULT,
        .error_limit = is_small ? 5 : SMTP_ERRORS_DEFAULT,
        .junk_command_limit = is_small ? 5 : SMTP_JUNK_COMMANDS_DEFAULT,
        .reject_bare_lf = (options & OPT_BARE_LF) != 0,
        .is_submission = (options & OPT_SUBMISSION) != 0,
    };
    o->body = malloc(body_capacity);
    FUZZ_CHECK(o->body != NULL);
    smtp_session_init(&o->session, &o->config, &owner_callbacks, o, "192.0.2.1");
    /* Submission runs secure (AUTH offered); port 25 offers STARTTLS. */
    smtp_session_set_transport(&o->session, (options & OPT_SUBMISSION) == 0,
                               (options & OPT_SUBMISSION) != 0, false);
    FUZZ_CHECK(smtp_session_wants_input(&o->session));
    if (!is_lazy_drain) {
        owner_drain(o);
    }
}

static void
owner_check_delivered_file(const struct owner *o)
{
    static const char head[] = "Return-Path: <";
    FUZZ_CHECK(o->file.len >= sizeof(head) - 1);
    FUZZ_CHECK(memcmp(o->file.ptr, head, sizeof(head) - 1) == 0);
    /* Trace headers and the decoders write CRLF line ends only. */
    for (size_t i = 0; i < o->file.len; i++) {
        if (o->file.ptr[i] == '\n') {
            FUZZ_CHECK(i > 0 && o->file.ptr[i - 1] == '\r');
        }
    }
    /* With the bare LF policy, nothing that had one is delivered. */
    if (o->config.reject_bare_lf) {
        const struct smtp_session *s = &o->session;
        FUZZ_CHECK((s->txn.is_bdat ? s->bdat_decoder.bare_lf_count
                                   : s->data_decoder.bare_lf_count) == 0);
    }
}

/* Performs every request there is; returns how many. */
static unsigned
owner_serve(struct owner *o)
{
    struct smtp_session *s = &o->session;
    for (unsigned round = 0;; round++) {
        FUZZ_CHECK(round < 8);
        enum smtp_request what = smtp_session_take_request(s);
        if (what == SMTP_REQUEST_NONE) {
            FUZZ_CHECK(s->request == SMTP_REQUEST_NONE);
            return round;
        }
        FUZZ_CHECK(smtp_session_take_request(s) == SMTP_REQUEST_NONE);
        FUZZ_CHECK(!smtp_session_wants_input(s));
        FUZZ_CHECK(!smtp_session_is_closing(s));
        FUZZ_CHECK(smtp_session_feed(s, (const uint8_t *)"RSET\r\n", 6) == 0);
        switch (what) {
        case SMTP_REQUEST_NONE:
            break;
        case SMTP_REQUEST_SPOOL_OPEN:
            FUZZ_CHECK(s->state == SMTP_STATE_SPOOL_OPEN);
            FUZZ_CHECK(!o->has_file);
            FUZZ_CHECK(s->txn.rcpt_count > 0);
            if ((o->fail & FAIL_OPEN) && o->open_count % 2 == 0) {
                o->open_count++;
                smtp_session_spool_opened(s, -ENOSPC, NULL, 0, NULL, NOW);
            } else {
                o->open_count++;
                o->has_file = true;
                o->file.len = 0;
                smtp_session_spool_opened(s, 0, o->body, o->body_capacity, QUEUE_ID, NOW);
            }
            break;
        case SMTP_REQUEST_SPOOL_WRITE: {
            struct span body = smtp_session_body(s);
            FUZZ_CHECK(body.len > 0);
            FUZZ_CHECK(body.len <= o->body_capacity);
            FUZZ_CHECK((const uint8_t *)body.ptr == o->body);
            FUZZ_CHECK(o->has_file);
            if ((o->fail & FAIL_WRITE) && o->write_count % 2 == 0) {
                o->write_count++;
                smtp_session_spool_written(s, -EIO);
            } else {
                o->write_count++;
                bytes_append(&o->file, body.ptr, body.len);
                smtp_session_spool_written(s, 0);
            }
            break;
        }
        case SMTP_REQUEST_AUTH: {
            /* Credentials are whole strings; one user knows the password. */
            const char *user = smtp_session_auth_user(s);
            FUZZ_CHECK(strlen(user) > 0 && strlen(user) < SMTP_AUTH_USER_BYTES);
            bool is_ok = strcmp(smtp_session_auth_password(s), "secret") == 0;
            if (o->auth_count++ % 3 == 2) {
                smtp_session_auth_tempfail(s);
            } else {
                smtp_session_auth_done(s, is_ok, is_ok ? "alice@example.test" : NULL);
            }
            FUZZ_CHECK(s->auth_password[0] == '\0');
            break;
        }
        case SMTP_REQUEST_STARTTLS:
            FUZZ_CHECK(!s->is_tls);
            smtp_session_tls_started(s);
            FUZZ_CHECK(s->state == SMTP_STATE_CONNECTED && s->is_tls);
            break;
        case SMTP_REQUEST_DELIVER:
            FUZZ_CHECK(s->state == SMTP_STATE_DELIVER);
            FUZZ_CHECK(o->has_file);
            FUZZ_CHECK(s->txn.rcpt_count > 0);
            FUZZ_CHECK(s->txn.rcpt_count <= o->config.recipient_limit);
            FUZZ_CHECK(s->txn.body_bytes == o->file.len);
            owner_check_delivered_file(o);
            bytes_append(&o->delivered, o->file.ptr, o->file.len);
            o->has_file = false;
            o->file.len = 0;
            if ((o->fail & FAIL_DELIVER) && o->deliver_count % 2 == 0) {
                o->deliver_count++;
                smtp_session_delivered(s, DELIVER_FAIL_LINE);
            } else {
                o->deliver_count++;
                o->accepted_count++;
                smtp_session_delivered(s, DELIVER_OK_LINE);
            }
            break;
        }
        if (!o->is_lazy_drain) {
            owner_drain(o);
        }
    }
}

static void
owner_event(struct owner *o, enum event event)
{
    struct smtp_session *s = &o->session;
    if (event == EVENT_SHUTDOWN || event == EVENT_SHUTDOWN_TIMEOUT) {
        smtp_session_shutdown(s);
        (void)owner_serve(o); /* shutdown asks for nothing; checked inside */
    }
    /* The reactor's timer runs only while a receive is armed, that is
     * while the session wants input. */
    if ((event == EVENT_TIMEOUT || event == EVENT_SHUTDOWN_TIMEOUT) &&
        smtp_session_wants_input(s)) {
        unsigned aborts = o->abort_count;
        smtp_session_timeout(s);
        o->is_timed_out = true;
        FUZZ_CHECK(smtp_session_is_closing(s));
        FUZZ_CHECK(o->abort_count == aborts + 1);
        FUZZ_CHECK(!o->has_file);
    }
    if (!o->is_lazy_drain) {
        owner_drain(o);
    }
}

/* Feed in[0..len) in pieces of step bytes (0: one piece), each an exact
 * heap copy offered until used up or the session closes; the event fires
 * once at byte event_at. */
static void
owner_drive(struct owner *o, const uint8_t *in, size_t len, size_t step, enum event event,
            size_t event_at)
{
    struct smtp_session *s = &o->session;
    size_t pos = 0;
    bool is_event_done = event == EVENT_NONE;
    while (pos < len && !smtp_session_is_closing(s)) {
        size_t n = len - pos;
        if (step > 0 && n > step) {
            n = step;
        }
        if (!is_event_done && event_at >= pos && event_at - pos < n) {
            n = event_at - pos;
            if (n == 0) {
                owner_event(o, event);
                is_event_done = true;
                continue;
            }
        }
        uint8_t *piece = malloc(n);
        FUZZ_CHECK(piece != NULL);
        memcpy(piece, in + pos, n);
        size_t off = 0;
        unsigned stalls = 0;
        while (off < n && !smtp_session_is_closing(s)) {
            bool was_over = smtp_session_output(s).len > SMTP_SEND_HIGH_BYTES;
            size_t used = smtp_session_feed(s, piece + off, n - off);
            FUZZ_CHECK(used <= n - off);
            if (was_over) {
                FUZZ_CHECK(used == 0);
            }
            off += used;
            /* A feed may end with a request and no byte taken: the body
             * buffer filled up with bytes the decoder held back. */
            unsigned served = owner_serve(o);
            if (!o->is_lazy_drain) {
                owner_drain(o);
            }
            if (used > 0 || served > 0) {
                stalls = 0;
                continue;
            }
            /* Nothing taken and no request out: only unsent output may
             * hold the session back. */
            if (!smtp_session_is_closing(s)) {
                FUZZ_CHECK(!smtp_session_wants_input(s));
                FUZZ_CHECK(smtp_session_output(s).len > SMTP_SEND_HIGH_BYTES);
                owner_drain(o);
                FUZZ_CHECK(smtp_session_wants_input(s));
            }
            stalls++;
            FUZZ_CHECK(stalls < 3);
        }
        free(piece);
        pos += off;
        if (off < n) {
            break;
        }
    }
    if (!is_event_done && !smtp_session_is_closing(s)) {
        owner_event(o, event);
    }
    owner_drain(o);
    o->consumed = pos;
    FUZZ_CHECK(s->request == SMTP_REQUEST_NONE);
    if (!smtp_session_is_closing(s)) {
        FUZZ_CHECK(pos == len);
        FUZZ_CHECK(smtp_session_wants_input(s));
    } else {
        FUZZ_CHECK(!smtp_session_wants_input(s));
    }
}

static bool
is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Every reply line: 3 digits, ' ' or '-', text without CR or LF, CRLF; a
 * '-' line is continued by a line with the same code. */
static void
check_replies(const struct bytes *out)
{
    FUZZ_CHECK(out->len >= 4 && memcmp(out->ptr, "220 ", 4) == 0);
    size_t pos = 0;
    bool is_continued = false;
    uint8_t code[3] = { 0, 0, 0 };
    while (pos < out->len) {
        const uint8_t *line = out->ptr + pos;
        const uint8_t *lf = memchr(line, '\n', out->len - pos);
        FUZZ_CHECK(lf != NULL);
        size_t line_len = (size_t)(lf - line) + 1;
        FUZZ_CHECK(line_len >= 6);
        FUZZ_CHECK(line[line_len - 2] == '\r');
        FUZZ_CHECK(line_len <= SMTP_REPLY_LINE_BYTES_MAX);
        FUZZ_CHECK(is_digit(line[0]) && is_digit(line[1]) && is_digit(line[2]));
        FUZZ_CHECK(line[0] >= '2' && line[0] <= '5');
        FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        FUZZ_CHECK(memchr(line, '\r', line_len - 2) == NULL);
        if (is_continued) {
            FUZZ_CHECK(memcmp(code, line, 3) == 0);
        }
        memcpy(code, line, 3);
        is_continued = line[3] == '-';
        pos += line_len;
    }
    FUZZ_CHECK(!is_continued);
}

static unsigned
count_queued(const struct bytes *out)
{
    static const char queued_line[] = DELIVER_OK_LINE "\r\n";
    size_t n = sizeof(queued_line) - 1;
    unsigned count = 0;
    for (size_t i = 0; i + n <= out->len; i++) {
        if (memcmp(out->ptr + i, queued_line, n) == 0) {
            count++;
        }
    }
    return count;
}

static void
owner_finish(struct owner *o)
{
    check_replies(&o->out);
    FUZZ_CHECK(count_queued(&o->out) == o->accepted_count);
    unsigned aborts = o->abort_count;
    smtp_session_finish(&o->session);
    FUZZ_CHECK(o->abort_count == aborts + 1);
    FUZZ_CHECK(!o->has_file);
}

static void
owner_destroy(struct owner *o)
{
    free(o->out.ptr);
    free(o->file.ptr);
    free(o->delivered.ptr);
    free(o->body);
}

static bool
bytes_equal(const struct bytes *a, const struct bytes *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static struct owner runs[3];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) {
        return 0;
    }
    unsigned options = data[0] & 0x1fu;
    unsigned event_bits = data[0] >> 5;
    if (event_bits == 1 || event_bits == 3) {
        options |= OPT_SUBMISSION;
    }
    enum event event = event_bits == 4   ? EVENT_TIMEOUT
                       : event_bits == 5 ? EVENT_SHUTDOWN
                       : event_bits == 6 ? EVENT_SHUTDOWN_TIMEOUT
                                         : EVENT_NONE;
    size_t step = data[1] & 0x7fu;
    bool is_event_lazy = (data[1] & 0x80u) != 0;
    const uint8_t *in = data + 4;
    size_t len = size - 4;
    size_t event_at = len * data[2] / 255;
    size_t body_capacity = BODY_BUFFER_BYTES_MIN + 8 * (size_t)data[3];

    struct owner *whole = &runs[0];
    struct owner *split = &runs[1];
    struct owner *with_event = &runs[2];

    owner_init(whole, options, false, body_capacity);
    owner_drive(whole, in, len, 0, EVENT_NONE, 0);
    owner_finish(whole);

    owner_init(split, options, true, body_capacity);
    owner_drive(split, in, len, step, EVENT_NONE, 0);
    owner_finish(split);

    /* The replies and the delivered bytes do not depend on how the input
     * was cut or when the output was sent. */
    FUZZ_CHECK(bytes_equal(&whole->out, &split->out));
    FUZZ_CHECK(bytes_equal(&whole->delivered, &split->delivered));
    FUZZ_CHECK(whole->consumed == split->consumed);
    FUZZ_CHECK(whole->open_count == split->open_count);
    /* Not the number of spool writes: a session whose replies are not
     * drained may flush a part-filled body buffer before it stops reading,
     * so the bytes arrive in more writes; what they add up to is checked
     * above (and with FAIL_WRITE a different count would change the
     * replies, which are compared too). */
    FUZZ_CHECK(whole->deliver_count == split->deliver_count);
    FUZZ_CHECK(whole->accepted_count == split->accepted_count);
    FUZZ_CHECK(whole->abort_count == split->abort_count);
    FUZZ_CHECK(whole->session.state == split->session.state);

    if (event != EVENT_NONE) {
        owner_init(with_event, options, is_event_lazy, body_capacity);
        owner_drive(with_event, in, len, step, event, event_at);
        if (with_event->is_timed_out) {
            FUZZ_CHECK(smtp_session_is_closing(&with_event->session));
        }
        /* Shut down and idle (a transaction ended by RSET or EHLO, or a
         * refused BDAT chunk read): the next command closes the session,
         * whatever partial line came before it. */
        struct smtp_session *s = &with_event->session;
        if (event != EVENT_TIMEOUT && !smtp_session_is_closing(s) &&
            (s->state == SMTP_STATE_CONNECTED || s->state == SMTP_STATE_READY)) {
            static const uint8_t next[] = "\r\nNOOP\r\n";
            owner_drain(with_event);
            size_t used = smtp_session_feed(s, next, sizeof(next) - 1);
            FUZZ_CHECK(used <= sizeof(next) - 1);
            FUZZ_CHECK(s->request == SMTP_REQUEST_NONE);
            FUZZ_CHECK(smtp_session_is_closing(s));
            owner_drain(with_event);
        }
        owner_finish(with_event);
        owner_destroy(with_event);
    }
    owner_destroy(whole);
    owner_destroy(split);
    return 0;
}
