/*
 * tests/fuzz/fuzz_smtp_session_lmtp.c - libFuzzer harness for the SMTP
 * session in LMTP mode (RFC 2033), driven the way its owner drives it.
 *
 * Byte 0 chooses the run: bits 0-1 make every second spool open / spool
 * write fail; bit 2 selects small limits (size 300, 3 recipients, 5
 * errors); bit 3 drains output only when the session stalls on it; bits
 * 4-7 the piece size the rest is fed in (0: whole). The rest is what the
 * client sends. A fake owner answers every request at once and gives each
 * accepted recipient a reply of its own (250, 452 or 550 by its place).
 * Every run checks: at most one request at a time and no input taken while
 * one is out; the output never past its buffer; replies well formed (three
 * digits, ' ' or '-', CRLF); after each DELIVER every recipient's reply is
 * asked exactly once, in order, and appears in the output in that order
 * before anything else; never more consumed than fed, and all of it unless
 * closing; no spool file left when the session ends. A broken property
 * aborts.
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

#define HOST "lmtp.test"
#define QUEUE_ID "TESTQID"
#define NOW ((time_t)1700000000)
#define BODY_BUFFER_BYTES (4 * SMTP_LINE_BYTES_MAX)

#define FAIL_OPEN 0x1u
#define FAIL_WRITE 0x2u
#define OPT_SMALL 0x4u
#define OPT_LAZY 0x8u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct owner {
    struct smtp_session        session;
    struct smtp_session_config config;
    unsigned                   options;
    uint8_t                    body[BODY_BUFFER_BYTES];
    bool                       has_file;
    uint64_t                   file_len;
    unsigned                   open_count;
    unsigned                   write_count;
    uint32_t                   rcpt_count;  /* accepted in this transaction */
    uint32_t                   next_reply;  /* the index to be asked next */
    uint32_t                   expect_replies; /* replies still owed in the output */
    uint32_t                   deliver_rcpts;  /* recipients of the last DELIVER */
    char                      *out;
    size_t                     out_len;
    size_t                     out_cap;
};

static enum smtp_rcpt_verdict
owner_rcpt(void *owner, const struct smtp_rcpt_request *request)
{
    struct owner *o = owner;
    const struct smtp_path *path = request->path;
    FUZZ_CHECK(!path->is_null);
    if (path->local_part.len > 0 && path->local_part.ptr[0] == 'u') {
        return SMTP_RCPT_UNKNOWN_USER;
    }
    if (span_equals_nocase(path->domain, "remote.test")) {
        return SMTP_RCPT_RELAY_DENIED;
    }
    o->rcpt_count++;
    return SMTP_RCPT_ACCEPT;
}

static void
owner_txn_abort(void *owner)
{
    struct owner *o = owner;
    o->has_file = false;
    o->file_len = 0;
    o->rcpt_count = 0;
    o->next_reply = 0;
}

static const char *const reply_of[3] = {
    "250 2.0.0 <r> Ok", "452 4.2.2 <r> Mailbox full", "550 5.7.1 <r> Rejected",
};

static void
owner_rcpt_reply(void *owner, uint32_t index, char *reply, size_t reply_bytes)
{
    struct owner *o = owner;
    FUZZ_CHECK(index == o->next_reply);
    FUZZ_CHECK(index < o->rcpt_count);
    FUZZ_CHECK(reply_bytes == SMTP_REPLY_LINE_BYTES_MAX);
    o->next_reply++;
    (void)snprintf(reply, reply_bytes, "%s", reply_of[index % 3]);
}

static const struct smtp_session_callbacks owner_callbacks = {
    .rcpt = owner_rcpt,
    .txn_abort = owner_txn_abort,
    .rcpt_reply = owner_rcpt_reply,
};

/* Take the output, checking each complete line's form. */
static size_t
owner_drain(struct owner *o)
{
    struct span out = smtp_session_output(&o->session);
    FUZZ_CHECK(out.len <= SMTP_SEND_BUFFER_BYTES);
    if (o->out_len + out.len > o->out_cap) {
        size_t cap = o->out_cap > 0 ? o->out_cap : 4096;
        while (cap < o->out_len + out.len) {
            cap *= 2;
        }
        char *grown = realloc(o->out, cap);
        FUZZ_CHECK(grown != NULL);
        o->out = grown;
        o->out_cap = cap;
    }
    memcpy(o->out + o->out_len, out.ptr, out.len);
    o->out_len += out.len;
    smtp_session_output_sent(&o->session, out.len);
    /* Whole lines so far: check and drop them. */
    size_t start = 0;
    for (size_t i = 0; i + 1 < o->out_len; i++) {
        if (o->out[i] != '\r' || o->out[i + 1] != '\n') {
            continue;
        }
        const char *line = o->out + start;
        size_t len = i - start;
        FUZZ_CHECK(len >= 4);
        FUZZ_CHECK(line[0] >= '2' && line[0] <= '5');
        FUZZ_CHECK(line[1] >= '0' && line[1] <= '9' && line[2] >= '0' && line[2] <= '9');
        FUZZ_CHECK(line[3] == ' ' || line[3] == '-');
        if (o->expect_replies > 0) {
            /* The next line is the next recipient's reply, in RCPT order:
             * the owner gave reply_of[i % 3] to recipient i. */
            uint32_t index = o->deliver_rcpts - o->expect_replies;
            const char *want = reply_of[index % 3];
            FUZZ_CHECK(len == strlen(want) && memcmp(line, want, len) == 0);
            o->expect_replies--;
        }
        start = i + 2;
        i++;
    }
    memmove(o->out, o->out + start, o->out_len - start);
    o->out_len -= start;
    return out.len;
}

static unsigned
owner_serve(struct owner *o)
{
    struct smtp_session *s = &o->session;
    for (unsigned round = 0;; round++) {
        FUZZ_CHECK(round < 8);
        enum smtp_request what = smtp_session_take_request(s);
        if (what == SMTP_REQUEST_NONE) {
            return round;
        }
        FUZZ_CHECK(!smtp_session_wants_input(s));
        FUZZ_CHECK(smtp_session_feed(s, (const uint8_t *)"RSET\r\n", 6) == 0);
        switch (what) {
        case SMTP_REQUEST_SPOOL_OPEN:
            FUZZ_CHECK(!o->has_file);
            FUZZ_CHECK(s->txn.rcpt_count > 0);
            if ((o->options & FAIL_OPEN) && o->open_count++ % 2 == 0) {
                smtp_session_spool_opened(s, -ENOSPC, NULL, 0, NULL, NOW);
            } else {
                o->has_file = true;
                o->file_len = 0;
                smtp_session_spool_opened(s, 0, o->body, sizeof(o->body), QUEUE_ID, NOW);
            }
            break;
        case SMTP_REQUEST_SPOOL_WRITE: {
            struct span body = smtp_session_body(s);
            FUZZ_CHECK(body.len > 0 && o->has_file);
            if ((o->options & FAIL_WRITE) && o->write_count++ % 2 == 0) {
                smtp_session_spool_written(s, -EIO);
            } else {
                o->file_len += body.len;
                smtp_session_spool_written(s, 0);
            }
            break;
        }
        case SMTP_REQUEST_DELIVER:
            FUZZ_CHECK(s->state == SMTP_STATE_DELIVER);
            FUZZ_CHECK(o->has_file);
            FUZZ_CHECK(s->txn.rcpt_count == o->rcpt_count);
            FUZZ_CHECK(s->txn.body_bytes == o->file_len);
            FUZZ_CHECK(o->next_reply == 0);
            o->has_file = false;
            /* Replies owed: whatever is queued now comes first. */
            owner_drain(o);
            FUZZ_CHECK(o->expect_replies == 0);
            o->expect_replies = s->txn.rcpt_count;
            o->deliver_rcpts = s->txn.rcpt_count;
            smtp_session_delivered_each(s);
            break;
        default:
            FUZZ_CHECK(false); /* LMTP asks for no AUTH and no STARTTLS */
        }
        if (!(o->options & OPT_LAZY)) {
            owner_drain(o);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    unsigned options = data[0];
    size_t piece = (size_t)(data[0] >> 4) * 3;
    data++;
    size--;
    struct owner *o = calloc(1, sizeof(*o));
    FUZZ_CHECK(o != NULL);
    o->options = options;
    bool is_small = (options & OPT_SMALL) != 0;
    o->config = (struct smtp_session_config){
        .hostname = HOST,
        .message_size_limit = is_small ? 300 : 1000000,
        .recipient_limit = is_small ? 3 : SMTP_RCPT_DEFAULT,
        .error_limit = is_small ? 5 : SMTP_ERRORS_DEFAULT,
        .junk_command_limit = is_small ? 5 : SMTP_JUNK_COMMANDS_DEFAULT,
        .is_lmtp = true,
    };
    smtp_session_init(&o->session, &o->config, &owner_callbacks, o, "unix");
    owner_drain(o);
    struct smtp_session *s = &o->session;
    size_t pos = 0;
    unsigned stalls = 0;
    while (pos < size && !smtp_session_is_closing(s)) {
        size_t n = piece == 0 || size - pos < piece ? size - pos : piece;
        size_t used = smtp_session_feed(s, data + pos, n);
        FUZZ_CHECK(used <= n);
        pos += used;
        unsigned served = owner_serve(o);
        size_t drained = 0;
        if (!(options & OPT_LAZY) || !smtp_session_wants_input(s)) {
            drained = owner_drain(o);
        }
        if (used > 0 || served > 0 || drained > 0) {
            stalls = 0;
        } else {
            FUZZ_CHECK(++stalls < 3); /* stuck for no reason */
        }
    }
    for (unsigned rounds = 0; owner_drain(o) > 0; rounds++) {
        FUZZ_CHECK(rounds < 100000); /* the replies still waiting for room */
    }
    FUZZ_CHECK(pos == size || smtp_session_is_closing(s));
    if (!smtp_session_is_closing(s)) {
        FUZZ_CHECK(o->expect_replies == 0); /* all given once the input is taken */
    }
    smtp_session_finish(s);
    FUZZ_CHECK(!o->has_file);
    free(o->out);
    free(o);
    return 0;
}
