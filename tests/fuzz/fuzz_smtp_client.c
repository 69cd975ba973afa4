/*
 * tests/fuzz/fuzz_smtp_client.c - libFuzzer harness for the SMTP client
 * (proto/smtp/smtp_client, smtp_client_reply) and the DATA dot-stuffing
 * encoder (proto/smtp/smtp_dotstuff).
 *
 * The first byte chooses how the simulated delivery agent behaves (DATA or
 * BDAT, STARTTLS when offered, when to QUIT); the rest is what the server
 * says. Properties: the machine is driven to the end of the input without
 * an assert; every output line ends in CRLF, has no other CR or LF and is at
 * most SMTP_CLIENT_COMMAND_BYTES_MAX; RCPT events name each recipient at
 * most once, in order, and only while a message is open; replies in events
 * have codes 200..599; and feeding the input a line at a time or one byte
 * at a time gives the same events and the same bytes out (whole, too, is
 * run for the properties). The same input, taken as a
 * message body, is dot-stuffed whole and in two pieces: the bytes must be
 * equal, end in CRLF "." CRLF and hold no other line ".", and no bare CR
 * or LF.
 *
 * Dictionary: tests/fuzz/smtp_client.dict (-dict=...).
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -I. \
 *   proto/smtp/smtp_client.c proto/smtp/smtp_client_reply.c \
 *   proto/smtp/smtp_dotstuff.c core/assertions.c tests/fuzz/fuzz_smtp_client.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_client.h"
#include "proto/smtp/smtp_dotstuff.h"
#include "tests/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TRANSCRIPT_BYTES (1 << 16)

struct run {
    struct smtp_client client;
    uint8_t transcript[TRANSCRIPT_BYTES];
    size_t transcript_len;
    uint64_t hash;
    bool has_message;
    size_t next_rcpt;
    unsigned messages;
    unsigned bdat_chunks;
};

static struct run runs[3];

static const struct smtp_client_rcpt rcpts[] = {
    {.address = SPAN_LITERAL("a@example.org"),
     .notify = SMTP_CLIENT_NOTIFY_FAILURE,
     .orcpt = SPAN_LITERAL("rfc822;a@example.org")},
    {.address = SPAN_LITERAL("b@example.org")},
    {.address = SPAN_LITERAL("c@example.org")},
};

static void
mix(struct run *r, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        r->hash = (r->hash ^ b[i]) * 1099511628211ull;
    }
}

static void
drain(struct run *r)
{
    struct span out = smtp_client_output(&r->client);
    FUZZ_CHECK(out.len <= SMTP_CLIENT_OUT_BYTES);
    /* Lines: CRLF-terminated, bounded, no stray CR or LF. */
    size_t line_start = 0;
    for (size_t i = 0; i < out.len; i++) {
        if (out.ptr[i] == '\n') {
            FUZZ_CHECK(i > 0 && out.ptr[i - 1] == '\r');
            FUZZ_CHECK(i + 1 - line_start <= SMTP_CLIENT_COMMAND_BYTES_MAX);
            line_start = i + 1;
        } else if (out.ptr[i] == '\r') {
            FUZZ_CHECK(i + 1 < out.len && out.ptr[i + 1] == '\n');
        }
    }
    FUZZ_CHECK(line_start == out.len);
    mix(r, out.ptr, out.len);
    smtp_client_output_consumed(&r->client, out.len);
}

static void
act(struct run *r, uint8_t mode, const struct smtp_client_event *ev)
{
    uint8_t kind = (uint8_t)ev->kind;
    mix(r, &kind, 1);
    mix(r, &ev->reply.code, sizeof(ev->reply.code));
    mix(r, ev->reply.text.ptr != NULL ? ev->reply.text.ptr : "", ev->reply.text.len);
    FUZZ_CHECK(ev->reply.text.len <= SMTP_CLIENT_REPLY_TEXT_BYTES);
    if (ev->reply.code != 0) {
        FUZZ_CHECK(ev->reply.code >= 200 && ev->reply.code <= 599);
    }
    switch (ev->kind) {
    case SMTP_CLIENT_EV_READY: {
        FUZZ_CHECK(!r->has_message);
        FUZZ_CHECK(smtp_client_state(&r->client) == SMTP_CLIENT_STATE_READY);
        const struct smtp_client_caps *caps = smtp_client_caps(&r->client);
        if ((mode & 1) && caps->has_starttls && smtp_client_starttls(&r->client) == 0) {
            break;
        }
        if (r->messages >= 1 + (mode >> 6)) {
            smtp_client_quit(&r->client);
            break;
        }
        struct smtp_client_message msg = {
            .mail_from = SPAN_LITERAL("s@example.net"),
            .rcpts = rcpts,
            .rcpt_count = 1 + (size_t)((mode >> 1) & 1) * 2,
            .size_bytes = 100,
            .needs_8bitmime = (mode & 8) != 0,
            .use_chunking = (mode & 4) != 0,
            .ret = SMTP_CLIENT_RET_HDRS,
            .envid = SPAN_LITERAL("id+2B1"),
        };
        static struct smtp_client_message keep[3];
        keep[r - runs] = msg;
        int rc = smtp_client_start_message(&r->client, &keep[r - runs]);
        mix(r, &rc, sizeof(rc));
        if (rc == 0) {
            r->has_message = true;
            r->next_rcpt = 0;
            r->messages++;
            r->bdat_chunks = 0;
        } else {
            FUZZ_CHECK(smtp_client_local_reply(rc) != NULL);
            smtp_client_quit(&r->client);
        }
        break;
    }
    case SMTP_CLIENT_EV_TLS_GO:
        FUZZ_CHECK(smtp_client_state(&r->client) == SMTP_CLIENT_STATE_TLS_HANDSHAKE);
        smtp_client_tls_started(&r->client);
        break;
    case SMTP_CLIENT_EV_RCPT:
        FUZZ_CHECK(r->has_message);
        FUZZ_CHECK(ev->rcpt_index == r->next_rcpt);
        FUZZ_CHECK(ev->rcpt_index < sizeof(rcpts) / sizeof(rcpts[0]));
        r->next_rcpt++;
        break;
    case SMTP_CLIENT_EV_SEND_BODY:
        FUZZ_CHECK(r->has_message);
        FUZZ_CHECK(smtp_client_state(&r->client) == SMTP_CLIENT_STATE_BODY);
        if (mode & 4 && smtp_client_caps(&r->client)->has_chunking) {
            r->bdat_chunks++;
            smtp_client_bdat(&r->client, 10 * r->bdat_chunks, r->bdat_chunks >= 2);
        } else {
            smtp_client_body_sent(&r->client);
        }
        break;
    case SMTP_CLIENT_EV_MESSAGE_DONE:
        FUZZ_CHECK(r->has_message);
        r->has_message = false;
        break;
    case SMTP_CLIENT_EV_PROTOCOL_ERROR:
        FUZZ_CHECK(smtp_client_state(&r->client) == SMTP_CLIENT_STATE_FAILED);
        FUZZ_CHECK(ev->had_message == r->has_message);
        r->has_message = false;
        break;
    case SMTP_CLIENT_EV_SESSION_FAILED:
        r->has_message = false;
        break;
    case SMTP_CLIENT_EV_CLOSED:
        FUZZ_CHECK(!r->has_message);
        FUZZ_CHECK(smtp_client_state(&r->client) == SMTP_CLIENT_STATE_CLOSED);
        break;
    case SMTP_CLIENT_EV_TLS_REFUSED:
    case SMTP_CLIENT_EV_AUTH_DONE:
        break;
    }
    drain(r);
}

/* step 0: one line (up to and including LF) per feed call, as a server
 * writes them; otherwise step bytes per call. */
static void
run_client(struct run *r, uint8_t mode, const uint8_t *in, size_t len, size_t step)
{
    memset(r, 0, sizeof(*r));
    r->hash = 1469598103934665603ull;
    struct smtp_client_params params = {.helo_name = SPAN_LITERAL("client.example.net")};
    FUZZ_CHECK(smtp_client_init(&r->client, &params) == 0);
    size_t pos = 0;
    /* Every feed call uses input or returns an event; events are bounded
     * by replies, so this many rounds always suffice. */
    for (size_t round = 0; round < 8 * (len + 8); round++) {
        size_t n = len - pos < step ? len - pos : step;
        if (step == 0) {
            const uint8_t *lf = memchr(in + pos, '\n', len - pos);
            n = lf != NULL ? (size_t)(lf - (in + pos)) + 1 : len - pos;
        }
        size_t used = 0;
        struct smtp_client_event ev;
        enum smtp_client_status st = smtp_client_feed(&r->client, in + pos, n, &used, &ev);
        FUZZ_CHECK(used <= n);
        pos += used;
        if (st == SMTP_CLIENT_EVENT) {
            act(r, mode, &ev);
            continue;
        }
        FUZZ_CHECK(used == n);
        if (pos == len) {
            return;
        }
    }
    FUZZ_CHECK(false); /* no progress */
}

static uint8_t stuffed[2][3 * 4096 + 16];

static size_t
stuff(const uint8_t *in, size_t len, size_t split, uint8_t *out)
{
    struct smtp_dotstuff s;
    smtp_dotstuff_init(&s);
    size_t o = 0;
    size_t pos = 0;
    for (int piece = 0; piece < 2; piece++) {
        size_t end = piece == 0 ? split : len;
        for (int guard = 0; guard < 100000 && pos < end; guard++) {
            size_t used = 0;
            size_t wrote = 0;
            smtp_dotstuff_encode(&s, in + pos, end - pos, &used, out + o, 64, &wrote);
            FUZZ_CHECK(wrote <= 64);
            pos += used;
            o += wrote;
        }
        FUZZ_CHECK(pos == end);
    }
    o += smtp_dotstuff_finish(&s, out + o, SMTP_DOTSTUFF_FINISH_BYTES_MAX);
    FUZZ_CHECK(s.out_total == o);
    return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) {
        return 0;
    }
    uint8_t mode = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    /* Line by line and byte by byte must agree. Whole input differs only
     * where bytes follow a 220 to STARTTLS in one read (refused as an
     * injection), so it is checked for the properties alone. */
    run_client(&runs[0], mode, in, len, 0);
    run_client(&runs[1], mode, in, len, 1);
    FUZZ_CHECK(runs[0].hash == runs[1].hash);
    run_client(&runs[2], mode, in, len, len > 0 ? len : 1);

    if (len <= 4096) {
        size_t a = stuff(in, len, len, stuffed[0]);
        size_t b = stuff(in, len, len > 0 ? mode % (len + 1) : 0, stuffed[1]);
        FUZZ_CHECK(a == b && memcmp(stuffed[0], stuffed[1], a) == 0);
        FUZZ_CHECK(a >= 3 && memcmp(stuffed[0] + a - 3, ".\r\n", 3) == 0);
        for (size_t i = 0; i < a; i++) {
            uint8_t c = stuffed[0][i];
            if (c == '\n') {
                FUZZ_CHECK(i > 0 && stuffed[0][i - 1] == '\r');
            } else if (c == '\r') {
                FUZZ_CHECK(i + 1 < a && stuffed[0][i + 1] == '\n');
            }
            bool at_line_start = i == 0 || stuffed[0][i - 1] == '\n';
            if (at_line_start && c == '.' && i + 3 < a) {
                /* A stuffed line starts "..": never a lone "." line. */
                FUZZ_CHECK(stuffed[0][i + 1] == '.');
            }
        }
    }
    return 0;
}
