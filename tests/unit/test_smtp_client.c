/*
 * tests/unit/test_smtp_client.c - the SMTP client protocol (proto/smtp/
 * smtp_client, smtp_client_reply, smtp_dotstuff) fed a server's bytes with
 * no socket: RFC 5321 Appendix D.1, the RFC 2920 pipelining example, the
 * RFC 3030 BDAT example, HELO fallback, STARTTLS reset and injection, AUTH
 * PLAIN, refusals at every stage, 421, garbage and every reply bound at
 * max - 1 / max / max + 1, extra replies, and dot-stuffing across every
 * chunk split. Each server script is fed whole and again one byte at a
 * time; the event log and the bytes we sent must be the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp/smtp_client.h"
#include "proto/smtp/smtp_client_reply.h"
#include "proto/smtp/smtp_dotstuff.h"
#include "tests/unit/unit.h"

int main(void);

static struct smtp_client client;
static char sent[1 << 20];
static size_t sent_len;
static char log_buf[1 << 16];
static size_t log_len;
static struct smtp_client_event last_done;

static void
log_add(const char *s)
{
    size_t n = strlen(s);
    if (log_len + n < sizeof(log_buf)) {
        memcpy(log_buf + log_len, s, n);
        log_len += n;
        log_buf[log_len] = '\0';
    }
}

/* Take everything the client wants to send. */
static void
drain(void)
{
    for (int i = 0; i < 100000; i++) {
        struct span out = smtp_client_output(&client);
        if (out.len == 0) {
            return;
        }
        if (sent_len + out.len < sizeof(sent)) {
            memcpy(sent + sent_len, out.ptr, out.len);
            sent_len += out.len;
            sent[sent_len] = '\0';
        }
        smtp_client_output_consumed(&client, out.len);
    }
}

static const char *
result_name(enum smtp_client_result r)
{
    return r == SMTP_CLIENT_RESULT_OK ? "ok" : r == SMTP_CLIENT_RESULT_DEFER ? "defer" : "fail";
}

static const char *
stage_name(enum smtp_client_stage s)
{
    switch (s) {
    case SMTP_CLIENT_STAGE_MAIL:
        return "mail";
    case SMTP_CLIENT_STAGE_RCPT:
        return "rcpt";
    case SMTP_CLIENT_STAGE_DATA:
        return "data";
    case SMTP_CLIENT_STAGE_FINAL:
        return "final";
    }
    return "?";
}

static void
log_event(const struct smtp_client_event *ev)
{
    char line[256];
    switch (ev->kind) {
    case SMTP_CLIENT_EV_RCPT:
        (void)snprintf(line, sizeof(line), "rcpt %zu %u %s;", ev->rcpt_index, ev->reply.code,
                       result_name(ev->result));
        break;
    case SMTP_CLIENT_EV_MESSAGE_DONE:
        (void)snprintf(line, sizeof(line), "done %s %s %u%s;", result_name(ev->result),
                       stage_name(ev->stage), ev->reply.code, ev->is_reusable ? "" : " last");
        last_done = ev[0];
        break;
    case SMTP_CLIENT_EV_AUTH_DONE:
    case SMTP_CLIENT_EV_TLS_REFUSED:
    case SMTP_CLIENT_EV_SESSION_FAILED:
        (void)snprintf(line, sizeof(line), "%s %u;", smtp_client_event_name(ev->kind),
                       ev->reply.code);
        break;
    case SMTP_CLIENT_EV_PROTOCOL_ERROR:
        (void)snprintf(line, sizeof(line), "error %d/%s%s;", (int)ev->error,
                       smtp_client_reply_error_name(ev->reply_error),
                       ev->had_message ? " msg" : "");
        break;
    default:
        (void)snprintf(line, sizeof(line), "%s;", smtp_client_event_name(ev->kind));
        break;
    }
    log_add(line);
}

/* Feed a server's bytes, whole or in steps of `step` bytes; log events and
 * take output after each event (as the agent would). */
static void
feed_step(const char *server, size_t step)
{
    size_t len = strlen(server);
    size_t pos = 0;
    for (int guard = 0; guard < 1000000; guard++) {
        size_t n = len - pos < step ? len - pos : step;
        size_t done = 0;
        /* Feed this piece until it is used, taking every event. */
        for (int inner = 0; inner < 100000; inner++) {
            size_t used = 0;
            struct smtp_client_event ev;
            enum smtp_client_status st = smtp_client_feed(
                &client, (const uint8_t *)server + pos + done, n - done, &used, &ev);
            done += used;
            if (st == SMTP_CLIENT_EVENT) {
                log_event(&ev);
                drain();
                continue;
            }
            if (done == n) {
                break;
            }
        }
        drain();
        pos += n;
        if (pos >= len) {
            return;
        }
    }
}

static void
feed(const char *server)
{
    feed_step(server, strlen(server) > 0 ? strlen(server) : 1);
}

static void
start(void)
{
    struct smtp_client_params params = {.helo_name = SPAN_LITERAL("mx.example.net")};
    CHECK(smtp_client_init(&client, &params) == 0);
    sent_len = 0;
    sent[0] = '\0';
    log_len = 0;
    log_buf[0] = '\0';
    memset(&last_done, 0, sizeof(last_done));
}

static void
check_log_sent(const char *want_log, const char *want_sent)
{
    CHECK_STR(log_buf, want_log);
    CHECK_STR(sent, want_sent);
}

/* ---- reply parser ---- */

/* Parse a whole input; returns the last status and the reply. */
static enum smtp_client_reply_status
parse_all(struct smtp_client_reply_parser *p, const char *in, size_t len, size_t step,
          size_t *lines_out)
{
    smtp_client_reply_init(p);
    size_t pos = 0;
    size_t lines = 0;
    enum smtp_client_reply_status st = SMTP_CLIENT_REPLY_NEED_MORE;
    while (pos < len) {
        size_t n = len - pos < step ? len - pos : step;
        size_t used = 0;
        st = smtp_client_reply_feed(p, (const uint8_t *)in + pos, n, &used);
        pos += used;
        if (st == SMTP_CLIENT_REPLY_ERROR) {
            break;
        }
        if (st == SMTP_CLIENT_REPLY_LINE) {
            lines++;
            if (p->is_last && pos == len) {
                break;
            }
        }
    }
    *lines_out = lines;
    return st;
}

static void
test_reply_parser(void)
{
    static struct smtp_client_reply_parser p;
    size_t lines = 0;
    for (size_t step = 1; step <= 64; step += 63) {
        const char *multi = "250-mx.example.com hello\r\n250-PIPELINING\r\n250 2.0.0 SIZE 100\r\n";
        CHECK(parse_all(&p, multi, strlen(multi), step, &lines) == SMTP_CLIENT_REPLY_LINE);
        CHECK(lines == 3);
        CHECK(p.is_last);
        CHECK(p.reply.code == 250);
        CHECK(!p.reply.has_enhanced); /* only the first line counts */
        CHECK_BYTES(p.reply.text.ptr, p.reply.text.len,
                    "mx.example.com hello PIPELINING 2.0.0 SIZE 100", 46);
        const char *enh = "550-5.1.1 no such user\n550 5.1.1 really\n"; /* bare LF */
        CHECK(parse_all(&p, enh, strlen(enh), step, &lines) == SMTP_CLIENT_REPLY_LINE);
        CHECK(p.reply.code == 550 && p.reply.has_enhanced && p.reply.enhanced_class == 5);
        CHECK(p.reply.enhanced_subject == 1 && p.reply.enhanced_detail == 1);
    }
    /* "250" alone is a last line; an enhanced code of another class is not one. */
    CHECK(parse_all(&p, "250\r\n", 5, 1, &lines) == SMTP_CLIENT_REPLY_LINE && p.is_last);
    CHECK(p.reply.code == 250 && p.reply.text.len == 0);
    CHECK(parse_all(&p, "451 5.1.1 x\r\n", 13, 13, &lines) == SMTP_CLIENT_REPLY_LINE);
    CHECK(!p.reply.has_enhanced);
    CHECK(parse_all(&p, "451 4.7.1000 x\r\n", 16, 16, &lines) == SMTP_CLIENT_REPLY_LINE);
    CHECK(!p.reply.has_enhanced); /* four digits */
    CHECK(parse_all(&p, "451 4.7.100 x\r\n", 15, 15, &lines) == SMTP_CLIENT_REPLY_LINE);
    CHECK(p.reply.has_enhanced && p.reply.enhanced_detail == 100);
    /* Garbage. */
    static const char *const bad[] = {
        "hello\r\n", "25\r\n",    "2500 x\r\n", "199 x\r\n", "600 x\r\n",
        "25x x\r\n", "260 x\r\n", "250_x\r\n",  "\r\n",      "HTTP/1.1 400 Bad Request\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(parse_all(&p, bad[i], strlen(bad[i]), 1, &lines) == SMTP_CLIENT_REPLY_ERROR);
        CHECK(p.error == SMTP_CLIENT_REPLY_SYNTAX);
    }
    CHECK(parse_all(&p, "250 a\0b\r\n", 9, 9, &lines) == SMTP_CLIENT_REPLY_ERROR);
    CHECK(p.error == SMTP_CLIENT_REPLY_SYNTAX);
    CHECK(parse_all(&p, "250-a\r\n251 b\r\n", 14, 3, &lines) == SMTP_CLIENT_REPLY_ERROR);
    CHECK(p.error == SMTP_CLIENT_REPLY_CODE_MISMATCH);
    /* Errors stick. */
    size_t used = 0;
    CHECK(smtp_client_reply_feed(&p, (const uint8_t *)"250 ok\r\n", 8, &used) ==
          SMTP_CLIENT_REPLY_ERROR);

    /* Line length: max - 1, max, max + 1 (CR LF not counted), with CRLF
     * and bare LF, fed whole and byte by byte. */
    static char big[SMTP_CLIENT_REPLY_LINE_BYTES_MAX + 16];
    for (int delta = -1; delta <= 1; delta++) {
        for (int crlf = 0; crlf <= 1; crlf++) {
            size_t line = (size_t)((int)SMTP_CLIENT_REPLY_LINE_BYTES_MAX + delta);
            memset(big, 'x', line);
            memcpy(big, "250 ", 4);
            size_t n = line;
            if (crlf) {
                big[n++] = '\r';
            }
            big[n++] = '\n';
            for (size_t step = 1; step <= n; step += n - 1) {
                enum smtp_client_reply_status st = parse_all(&p, big, n, step, &lines);
                if (delta <= 0) {
                    CHECK(st == SMTP_CLIENT_REPLY_LINE);
                    CHECK(p.reply.is_text_truncated);
                    CHECK(p.reply.text.len == SMTP_CLIENT_REPLY_TEXT_BYTES);
                } else {
                    CHECK(st == SMTP_CLIENT_REPLY_ERROR);
                    CHECK(p.error == SMTP_CLIENT_REPLY_LINE_TOO_LONG);
                }
            }
        }
    }
    /* Lines per reply: max - 1, max, max + 1. */
    static char many[(SMTP_CLIENT_REPLY_LINES_MAX + 2) * 8];
    for (int delta = -1; delta <= 1; delta++) {
        size_t count = (size_t)((int)SMTP_CLIENT_REPLY_LINES_MAX + delta);
        size_t n = 0;
        for (size_t i = 0; i < count; i++) {
            memcpy(many + n, i + 1 < count ? "250-ab\r\n" : "250 ab\r\n", 8);
            n += 8;
        }
        enum smtp_client_reply_status st = parse_all(&p, many, n, n, &lines);
        if (delta <= 0) {
            CHECK(st == SMTP_CLIENT_REPLY_LINE && p.is_last && lines == count);
            CHECK(!p.reply.is_text_truncated);
        } else {
            CHECK(st == SMTP_CLIENT_REPLY_ERROR && p.error == SMTP_CLIENT_REPLY_TOO_MANY_LINES);
        }
    }
    /* Bytes per reply: lines of 1000 bytes each, until the byte bound
     * breaks before the line bound. */
    static char huge[SMTP_CLIENT_REPLY_BYTES_MAX + 4096];
    size_t n = 0;
    while (n + 1000 < sizeof(huge) - 1000) {
        memset(huge + n, 'y', 1000);
        memcpy(huge + n, "250-", 4);
        huge[n + 998] = '\r';
        huge[n + 999] = '\n';
        n += 1000;
    }
    CHECK(parse_all(&p, huge, n, 4096, &lines) == SMTP_CLIENT_REPLY_ERROR);
    CHECK(p.error == SMTP_CLIENT_REPLY_TOO_LONG);
    CHECK(lines == SMTP_CLIENT_REPLY_BYTES_MAX / 1000);
    /* Just inside the byte bound: 65 lines of 1000 = 65,000 <= 65,536. */
    memcpy(huge + 64 * 1000, "250 ", 4);
    CHECK(parse_all(&p, huge, 65 * 1000, 4096, &lines) == SMTP_CLIENT_REPLY_LINE);
    CHECK(p.is_last && lines == 65);
    /* The counts reset for the next reply. */
    size_t u2 = 0;
    CHECK(smtp_client_reply_feed(&p, (const uint8_t *)"250 ok\r\n", 8, &u2) ==
          SMTP_CLIENT_REPLY_LINE);
    CHECK(p.is_last && p.reply.code == 250 && p.reply.text.len == 2);
}

/* ---- dot-stuffing ---- */

static size_t
stuff_all(const char *in, size_t in_len, size_t step, size_t out_step, char *out, size_t out_bytes,
          struct smtp_dotstuff *s)
{
    smtp_dotstuff_init(s);
    size_t pos = 0;
    size_t o = 0;
    for (int guard = 0; guard < 1000000 && pos < in_len; guard++) {
        size_t n = in_len - pos < step ? in_len - pos : step;
        size_t used = 0;
        size_t wrote = 0;
        size_t room = out_bytes - o < out_step ? out_bytes - o : out_step;
        smtp_dotstuff_encode(s, (const uint8_t *)in + pos, n, &used, (uint8_t *)out + o, room,
                             &wrote);
        pos += used;
        o += wrote;
    }
    o += smtp_dotstuff_finish(s, (uint8_t *)out + o, out_bytes - o);
    return o;
}

static void
test_dotstuff(void)
{
    static const struct {
        const char *in;
        const char *out;
        uint64_t bare_lf;
        uint64_t bare_cr;
    } cases[] = {
        {"", ".\r\n", 0, 0},
        {"a\r\n", "a\r\n.\r\n", 0, 0},
        {"a", "a\r\n.\r\n", 0, 0},
        {".\r\n", "..\r\n.\r\n", 0, 0},
        {"a\r\n.b\r\n..\r\n", "a\r\n..b\r\n...\r\n.\r\n", 0, 0},
        {"a\n.\nb", "a\r\n..\r\nb\r\n.\r\n", 2, 0},
        {"a\r.\r\n", "a\r\n..\r\n.\r\n", 0, 1},
        {"a\r", "a\r\n.\r\n", 0, 1},
        {"\r\r\n", "\r\n\r\n.\r\n", 0, 1},
        {"x.y\r\n. \r\n", "x.y\r\n.. \r\n.\r\n", 0, 0},
        {"\n", "\r\n.\r\n", 1, 0},
        {"..", "...\r\n.\r\n", 0, 0},
    };
    static char out[256];
    struct smtp_dotstuff s;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t in_len = strlen(cases[i].in);
        /* Every input split and output room from the minimum up. */
        for (size_t step = 1; step <= in_len + 1; step++) {
            for (size_t out_step = SMTP_DOTSTUFF_STEP_BYTES_MAX; out_step <= 8; out_step++) {
                size_t n = stuff_all(cases[i].in, in_len, step, out_step, out, sizeof(out), &s);
                CHECK_BYTES(out, n, cases[i].out, strlen(cases[i].out));
                CHECK(s.bare_lf_count == cases[i].bare_lf);
                CHECK(s.bare_cr_count == cases[i].bare_cr);
                CHECK(s.out_total == n);
                CHECK(s.in_total == in_len);
            }
        }
    }
    /* A '.' first in a chunk after a chunk ending in CRLF, and a CRLF split
     * across two chunks, by explicit two-call feeding. */
    smtp_dotstuff_init(&s);
    size_t used = 0;
    size_t n1 = 0;
    size_t n2 = 0;
    smtp_dotstuff_encode(&s, (const uint8_t *)"ab\r\n", 4, &used, (uint8_t *)out, 64, &n1);
    CHECK(used == 4);
    smtp_dotstuff_encode(&s, (const uint8_t *)".cd\r", 4, &used, (uint8_t *)out + n1, 64, &n2);
    CHECK(used == 4);
    size_t n3 = 0;
    smtp_dotstuff_encode(&s, (const uint8_t *)"\n.", 2, &used, (uint8_t *)out + n1 + n2, 64, &n3);
    size_t total = n1 + n2 + n3;
    total += smtp_dotstuff_finish(&s, (uint8_t *)out + total, sizeof(out) - total);
    CHECK_BYTES(out, total, "ab\r\n..cd\r\n..\r\n.\r\n", 17);
    CHECK(s.bare_cr_count == 0 && s.bare_lf_count == 0);

    /* A long random-ish body: any split gives the bytes of the whole. */
    static char body[4096];
    static const char alphabet[] = "ab.\r\n";
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(body); i++) {
        x = x * 1103515245u + 12345u;
        body[i] = alphabet[(x >> 16) % 5];
    }
    static char whole[3 * sizeof(body) + 8];
    static char split[3 * sizeof(body) + 8];
    size_t wn =
        stuff_all(body, sizeof(body), sizeof(body), sizeof(whole), whole, sizeof(whole), &s);
    for (size_t step = 1; step < 40; step += 3) {
        size_t sn = stuff_all(body, sizeof(body), step, 3 + step % 7, split, sizeof(split), &s);
        CHECK_BYTES(split, sn, whole, wn);
    }
    /* The output has only CRLF line ends and no line "." but the last. */
    size_t lines_dot = 0;
    for (size_t i = 0; i + 1 < wn; i++) {
        if (whole[i] == '\n') {
            CHECK(i > 0 && whole[i - 1] == '\r');
        }
        if (whole[i] == '\r') {
            CHECK(whole[i + 1] == '\n');
        }
        if ((i == 0 || whole[i - 1] == '\n') && whole[i] == '.' && whole[i + 1] == '\r') {
            lines_dot++;
        }
    }
    CHECK(lines_dot == 1);
    CHECK(wn >= 3 && memcmp(whole + wn - 3, ".\r\n", 3) == 0);
}

/* ---- sessions ---- */

static const struct smtp_client_rcpt d1_rcpts[] = {
    {.address = SPAN_LITERAL("Jones@foo.com")},
    {.address = SPAN_LITERAL("Green@foo.com")},
    {.address = SPAN_LITERAL("Brown@foo.com")},
};

/* RFC 5321 Appendix D.1, one step at a time (no PIPELINING offered). */
static void
test_rfc5321_d1(size_t step)
{
    start();
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_GREETING);
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_GREETING_MS);
    feed_step("220 foo.com Simple Mail Transfer Service Ready\r\n", step);
    feed_step("250-foo.com greets bar.com\r\n250-8BITMIME\r\n250-SIZE\r\n250-DSN\r\n"
              "250 HELP\r\n",
              step);
    const struct smtp_client_caps *caps = smtp_client_caps(&client);
    CHECK(caps->is_esmtp && caps->has_8bitmime && caps->has_size && caps->has_dsn);
    CHECK(caps->size_max_bytes == 0 && !caps->has_pipelining && !caps->has_chunking);
    struct smtp_client_message msg = {
        .mail_from = SPAN_LITERAL("Smith@bar.com"), .rcpts = d1_rcpts, .rcpt_count = 3};
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_COMMAND_MS);
    feed_step("250 OK\r\n", step);
    feed_step("250 OK\r\n", step);
    feed_step("550 No such user here\r\n", step);
    feed_step("250 OK\r\n", step);
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_DATA_INIT_MS);
    feed_step("354 Start mail input; end with <CRLF>.<CRLF>\r\n", step);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_BODY);
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_DATA_BLOCK_MS);
    smtp_client_body_sent(&client);
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_DATA_END_MS);
    feed_step("250 OK\r\n", step);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_READY);
    smtp_client_quit(&client);
    drain();
    feed_step("221 foo.com Service closing transmission channel\r\n", step);
    check_log_sent("ready;rcpt 0 250 ok;rcpt 1 550 fail;rcpt 2 250 ok;send-body;"
                   "done ok final 250;ready;closed;",
                   "EHLO mx.example.net\r\nMAIL FROM:<Smith@bar.com>\r\n"
                   "RCPT TO:<Jones@foo.com>\r\nRCPT TO:<Green@foo.com>\r\n"
                   "RCPT TO:<Brown@foo.com>\r\nDATA\r\nQUIT\r\n");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_CLOSED);
    CHECK(smtp_client_timeout_ms(&client) == 0);
}

/* RFC 2920 section 3.2 example: the whole group in one write, replies in
 * one read. */
static void
test_rfc2920(size_t step)
{
    start();
    feed_step("220 innosoft.com SMTP service ready\r\n", step);
    feed_step("250-innosoft.com\r\n250 PIPELINING\r\n", step);
    static const struct smtp_client_rcpt rcpts[] = {
        {.address = SPAN_LITERAL("ned@innosoft.com")},
        {.address = SPAN_LITERAL("dan@innosoft.com")},
        {.address = SPAN_LITERAL("kvc@innosoft.com")},
    };
    struct smtp_client_message msg = {
        .mail_from = SPAN_LITERAL("mrose@dbc.mtview.ca.us"), .rcpts = rcpts, .rcpt_count = 3};
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    CHECK_STR(sent, "EHLO mx.example.net\r\nMAIL FROM:<mrose@dbc.mtview.ca.us>\r\n"
                    "RCPT TO:<ned@innosoft.com>\r\nRCPT TO:<dan@innosoft.com>\r\n"
                    "RCPT TO:<kvc@innosoft.com>\r\nDATA\r\n");
    feed_step("250 sender <mrose@dbc.mtview.ca.us> OK\r\n"
              "250 recipient <ned@innosoft.com> OK\r\n"
              "250 recipient <dan@innosoft.com> OK\r\n"
              "250 recipient <kvc@innosoft.com> OK\r\n"
              "354 enter mail, end with line containing only \".\"\r\n",
              step);
    smtp_client_body_sent(&client);
    feed_step("250 message sent\r\n", step);
    smtp_client_quit(&client);
    drain();
    feed_step("221 goodbye\r\n", step);
    CHECK_STR(log_buf, "ready;rcpt 0 250 ok;rcpt 1 250 ok;rcpt 2 250 ok;send-body;"
                       "done ok final 250;ready;closed;");
}

/* RFC 3030 section 4.2 example: BDAT in two chunks, the second LAST. */
static void
test_rfc3030(size_t step)
{
    start();
    feed_step("220 cnri.reston.va.us SMTP service ready\r\n", step);
    feed_step("250-cnri.reston.va.us says hello\r\n250 CHUNKING\r\n", step);
    static const struct smtp_client_rcpt rcpts[] = {
        {.address = SPAN_LITERAL("pgp@cnri.reston.va.us")},
    };
    struct smtp_client_message msg = {.mail_from = SPAN_LITERAL("Sam@Random.com"),
                                      .rcpts = rcpts,
                                      .rcpt_count = 1,
                                      .use_chunking = true};
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    feed_step("250 <Sam@Random.com>... Sender ok\r\n", step);
    feed_step("250 <pgp@cnri.reston.va.us>... Recipient ok\r\n", step);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_BODY);
    smtp_client_bdat(&client, 86, false);
    drain();
    CHECK(smtp_client_timeout_ms(&client) == SMTP_CLIENT_TIMEOUT_DATA_END_MS);
    feed_step("250 86 Octets received\r\n", step);
    smtp_client_bdat(&client, 44, true);
    drain();
    feed_step("250 Message OK, 130 Octets received\r\n", step);
    smtp_client_quit(&client);
    drain();
    feed_step("221 Goodbye\r\n", step);
    check_log_sent("ready;rcpt 0 250 ok;send-body;send-body;done ok final 250;ready;closed;",
                   "EHLO mx.example.net\r\nMAIL FROM:<Sam@Random.com>\r\n"
                   "RCPT TO:<pgp@cnri.reston.va.us>\r\nBDAT 86\r\nBDAT 44 LAST\r\nQUIT\r\n");
}

static void
test_helo_fallback(void)
{
    start();
    feed("220 old.example ESMTP\r\n500 Command unrecognized\r\n250 old.example\r\n");
    check_log_sent("ready;", "EHLO mx.example.net\r\nHELO mx.example.net\r\n");
    CHECK(!smtp_client_caps(&client)->is_esmtp);
    /* HELO refused too: the session fails politely. */
    start();
    feed("220 old.example\r\n502 no\r\n550 go away\r\n221 bye\r\n");
    check_log_sent("session-failed 550;closed;",
                   "EHLO mx.example.net\r\nHELO mx.example.net\r\nQUIT\r\n");
    /* A 4xx to EHLO is not a reason to try HELO. */
    start();
    feed("220 x\r\n451 busy\r\n");
    check_log_sent("session-failed 451;", "EHLO mx.example.net\r\nQUIT\r\n");
    /* Greeting refused (RFC 5321 section 3.1: 554). */
    start();
    feed("554 no SMTP service here\r\n221 bye\r\n");
    check_log_sent("session-failed 554;closed;", "QUIT\r\n");
    /* 421 as greeting: no QUIT, close. */
    start();
    feed("421 too busy\r\n");
    check_log_sent("session-failed 421;closed;", "");
}

static void
test_starttls(void)
{
    start();
    feed("220 mx ESMTP\r\n250-mx\r\n250-STARTTLS\r\n250-SIZE 1000\r\n250-AUTH PLAIN\r\n"
         "250 PIPELINING\r\n");
    CHECK(smtp_client_caps(&client)->has_starttls);
    CHECK(smtp_client_caps(&client)->size_max_bytes == 1000);
    CHECK(smtp_client_caps(&client)->auth_mechs == SMTP_CLIENT_AUTH_PLAIN);
    /* No AUTH in clear. */
    CHECK(smtp_client_auth_plain(&client, SPAN_LITERAL("u"), SPAN_LITERAL("p")) == -EPERM);
    CHECK(smtp_client_starttls(&client) == 0);
    drain();
    feed("220 2.0.0 Ready to start TLS\r\n");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_TLS_HANDSHAKE);
    smtp_client_tls_started(&client);
    /* Everything learnt in clear is gone. */
    CHECK(!smtp_client_caps(&client)->has_starttls);
    CHECK(!smtp_client_caps(&client)->has_pipelining);
    CHECK(smtp_client_caps(&client)->size_max_bytes == 0);
    drain();
    feed("250-mx\r\n250-AUTH LOGIN PLAIN\r\n250 SIZE 5000\r\n");
    CHECK(smtp_client_caps(&client)->size_max_bytes == 5000);
    CHECK(!smtp_client_caps(&client)->has_pipelining);
    CHECK(smtp_client_starttls(&client) == -EALREADY);
    CHECK(smtp_client_auth_plain(&client, SPAN_LITERAL("user"), SPAN_LITERAL("")) == -EINVAL);
    CHECK(smtp_client_auth_plain(&client, SPAN_LITERAL("user"), SPAN_LITERAL("pass")) == 0);
    drain();
    feed("235 2.7.0 Authentication successful\r\n");
    check_log_sent("ready;tls-go;ready;auth-done 235;ready;",
                   "EHLO mx.example.net\r\nSTARTTLS\r\nEHLO mx.example.net\r\n"
                   "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");

    /* Plaintext after the 220 (CVE-2011-0411): an error, not a reply. */
    start();
    feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    CHECK(smtp_client_starttls(&client) == 0);
    drain();
    feed("220 go\r\n250-mx\r\n250 AUTH PLAIN\r\n");
    CHECK_STR(log_buf, "ready;error 4/ok;");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_FAILED);
    /* Even a partial line behind the 220, fed byte by byte after it. */
    start();
    feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    CHECK(smtp_client_starttls(&client) == 0);
    drain();
    size_t used = 0;
    struct smtp_client_event ev;
    CHECK(smtp_client_feed(&client, (const uint8_t *)"220 go\r\n2", 9, &used, &ev) ==
          SMTP_CLIENT_EVENT);
    CHECK(ev.kind == SMTP_CLIENT_EV_PROTOCOL_ERROR && ev.error == SMTP_CLIENT_ERR_TLS_INJECTION);
    CHECK(used == 9);
    /* The 220 alone, then bytes fed in TLS_HANDSHAKE. */
    start();
    feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    CHECK(smtp_client_starttls(&client) == 0);
    CHECK(smtp_client_feed(&client, (const uint8_t *)"220 go\r\n", 8, &used, &ev) ==
          SMTP_CLIENT_EVENT);
    CHECK(ev.kind == SMTP_CLIENT_EV_TLS_GO && used == 8);
    CHECK(smtp_client_feed(&client, (const uint8_t *)"250 x\r\n", 7, &used, &ev) ==
          SMTP_CLIENT_EVENT);
    CHECK(ev.kind == SMTP_CLIENT_EV_PROTOCOL_ERROR && ev.error == SMTP_CLIENT_ERR_TLS_INJECTION);

    /* Refused STARTTLS: still plaintext, READY. */
    start();
    feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
    CHECK(smtp_client_starttls(&client) == 0);
    drain();
    feed("454 TLS not available\r\n");
    CHECK_STR(log_buf, "ready;tls-refused 454;ready;");
    /* Not offered. */
    start();
    feed("220 mx\r\n250 mx\r\n");
    CHECK(smtp_client_starttls(&client) == -ENOTSUP);
}

static void
test_auth(void)
{
    static const char *const outcomes[][2] = {
        {"535 5.7.8 bad\r\n", "ready;tls-go;ready;auth-done 535;ready;"},
        {"454 4.7.0 try later\r\n", "ready;tls-go;ready;auth-done 454;ready;"},
        {"334 \r\n501 5.7.0 cancelled\r\n", "ready;tls-go;ready;auth-done 501;ready;"},
        {"334 \r\n334 \r\n", "ready;tls-go;ready;error 3/ok;"},
        {"334 \r\n235 ok\r\n", "ready;tls-go;ready;error 3/ok;"},
    };
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        start();
        feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
        CHECK(smtp_client_starttls(&client) == 0);
        feed("220 go\r\n");
        smtp_client_tls_started(&client);
        feed("250-mx\r\n250 AUTH LOGIN\r\n");
        CHECK(smtp_client_auth_plain(&client, SPAN_LITERAL("u"), SPAN_LITERAL("p")) == -ENOTSUP);
        start();
        feed("220 mx\r\n250-mx\r\n250 STARTTLS\r\n");
        CHECK(smtp_client_starttls(&client) == 0);
        feed("220 go\r\n");
        smtp_client_tls_started(&client);
        feed("250-mx\r\n250 AUTH=PLAIN\r\n");
        CHECK(smtp_client_auth_plain(&client, SPAN_LITERAL("u"), SPAN_LITERAL("p")) == 0);
        drain();
        feed(outcomes[i][0]);
        CHECK_STR(log_buf, outcomes[i][1]);
    }
    /* The password left the output buffer wiped once sent. */
    struct span out = smtp_client_output(&client);
    CHECK(out.len == 0);
    for (size_t i = 0; i < sizeof(client.out); i++) {
        if (client.out[i] != 0) {
            CHECK(client.out[i] == 0);
            break;
        }
    }
}

/* A server with every extension; the message needs 8BITMIME and SMTPUTF8
 * and asks for DSN. */
static void
test_parameters(void)
{
    static const struct smtp_client_rcpt rcpts[] = {
        {.address = SPAN_LITERAL("a@x.example"),
         .notify = SMTP_CLIENT_NOTIFY_SUCCESS | SMTP_CLIENT_NOTIFY_FAILURE,
         .orcpt = SPAN_LITERAL("rfc822;a@x.example")},
        {.address = SPAN_LITERAL("b@x.example"), .notify = SMTP_CLIENT_NOTIFY_NEVER},
    };
    struct smtp_client_message msg = {.mail_from = SPAN_LITERAL("s@y.example"),
                                      .rcpts = rcpts,
                                      .rcpt_count = 2,
                                      .size_bytes = 1234,
                                      .needs_8bitmime = true,
                                      .needs_smtputf8 = true,
                                      .ret = SMTP_CLIENT_RET_HDRS,
                                      .envid = SPAN_LITERAL("QQ314159+2B")};
    start();
    feed("220 mx\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 2000\r\n250-8BITMIME\r\n"
         "250-SMTPUTF8\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n");
    const struct smtp_client_caps *caps = smtp_client_caps(&client);
    CHECK(caps->has_enhancedstatuscodes && caps->has_chunking && caps->has_smtputf8);
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    CHECK_STR(sent, "EHLO mx.example.net\r\n"
                    "MAIL FROM:<s@y.example> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS "
                    "ENVID=QQ314159+2B\r\n"
                    "RCPT TO:<a@x.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@x.example\r\n"
                    "RCPT TO:<b@x.example> NOTIFY=NEVER\r\nDATA\r\n");
    feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 full\r\n354 go\r\n");
    smtp_client_body_sent(&client);
    feed("250 2.0.0 queued as X\r\n");
    CHECK_STR(log_buf, "ready;rcpt 0 250 ok;rcpt 1 450 defer;send-body;done ok final 250;ready;");
    CHECK(last_done.reply.has_enhanced && last_done.reply.enhanced_class == 2);
    CHECK_BYTES(last_done.reply.text.ptr, last_done.reply.text.len, "2.0.0 queued as X", 17);

    /* Without DSN the DSN parameters stay home; the null sender is <>. */
    start();
    feed("220 mx\r\n250-mx\r\n250 8BITMIME\r\n");
    msg.needs_smtputf8 = false;
    msg.mail_from = span_make("", 0);
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    CHECK_STR(sent, "EHLO mx.example.net\r\nMAIL FROM:<> BODY=8BITMIME\r\n");

    /* Local refusals: nothing is written. */
    start();
    feed("220 mx\r\n250-mx\r\n250-SIZE 1000\r\n250 PIPELINING\r\n");
    msg.needs_8bitmime = true;
    CHECK(smtp_client_start_message(&client, &msg) == -EPROTONOSUPPORT);
    CHECK_STR(smtp_client_local_reply(-EPROTONOSUPPORT),
              "554 5.6.3 message needs 8BITMIME, remote server does not offer it (no conversion)");
    msg.needs_8bitmime = false;
    msg.needs_smtputf8 = true;
    CHECK(smtp_client_start_message(&client, &msg) == -EILSEQ);
    CHECK(strncmp(smtp_client_local_reply(-EILSEQ), "553 5.6.7 ", 10) == 0);
    msg.needs_smtputf8 = false;
    /* A UTF-8 address needs SMTPUTF8 even when the caller did not say so. */
    static const struct smtp_client_rcpt utf8_rcpt = {.address = SPAN_LITERAL("j\xc3\xb6rg@x")};
    struct smtp_client_message utf8 = msg;
    utf8.rcpts = &utf8_rcpt;
    utf8.rcpt_count = 1;
    CHECK(smtp_client_start_message(&client, &utf8) == -EILSEQ);
    utf8 = msg;
    utf8.mail_from = SPAN_LITERAL("\xc3\xa9@y");
    CHECK(smtp_client_start_message(&client, &utf8) == -EILSEQ);
    CHECK(smtp_client_start_message(&client, &msg) == -EMSGSIZE); /* 1234 > 1000 */
    CHECK(strncmp(smtp_client_local_reply(-EMSGSIZE), "552 5.3.4 ", 10) == 0);
    CHECK(smtp_client_local_reply(-EINVAL) == NULL);
    msg.size_bytes = 1000; /* at the limit is fine */
    struct smtp_client_message bad = msg;
    bad.rcpt_count = 0;
    CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    bad = msg;
    bad.rcpt_count = SMTP_RCPT_CEILING + 1;
    CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    bad = msg;
    bad.mail_from = SPAN_LITERAL("a\r\nRCPT TO:<evil@x>");
    CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    bad = msg;
    bad.envid = SPAN_LITERAL("a=b");
    CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    static const struct smtp_client_rcpt bad_rcpts[][1] = {
        {{.address = SPAN_LITERAL("")}},
        {{.address = SPAN_LITERAL("a b@x")}},
        {{.address = SPAN_LITERAL("a>@x")}},
        {{.address = SPAN_LITERAL("a@x"), .orcpt = SPAN_LITERAL("noaddrtype")}},
        {{.address = SPAN_LITERAL("a@x"),
          .notify = SMTP_CLIENT_NOTIFY_NEVER | SMTP_CLIENT_NOTIFY_DELAY}},
    };
    for (size_t i = 0; i < sizeof(bad_rcpts) / sizeof(bad_rcpts[0]); i++) {
        bad = msg;
        bad.rcpts = bad_rcpts[i];
        bad.rcpt_count = 1;
        CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    }
    /* Address at SMTP_ADDRESS_BYTES_MAX is fine, one more is not. */
    static char addr[SMTP_ADDRESS_BYTES_MAX + 1];
    memset(addr, 'a', sizeof(addr));
    addr[10] = '@';
    struct smtp_client_rcpt long_rcpt = {.address = span_make(addr, SMTP_ADDRESS_BYTES_MAX + 1)};
    bad = msg;
    bad.rcpts = &long_rcpt;
    bad.rcpt_count = 1;
    CHECK(smtp_client_start_message(&client, &bad) == -EINVAL);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_READY);
    CHECK_STR(sent, "EHLO mx.example.net\r\n");
    long_rcpt.address.len = SMTP_ADDRESS_BYTES_MAX;
    CHECK(smtp_client_start_message(&client, &bad) == 0);
    drain();
    CHECK(sent_len == 21 + strlen("MAIL FROM:<> SIZE=1000\r\n") + 12 + SMTP_ADDRESS_BYTES_MAX + 6);
}

static const struct smtp_client_rcpt two_rcpts[] = {
    {.address = SPAN_LITERAL("a@x.example")},
    {.address = SPAN_LITERAL("b@x.example")},
};

static void
begin_message(const char *ehlo, bool use_chunking)
{
    start();
    feed("220 mx\r\n");
    feed(ehlo);
    struct smtp_client_message msg = {.mail_from = SPAN_LITERAL("s@y.example"),
                                      .rcpts = two_rcpts,
                                      .rcpt_count = 2,
                                      .use_chunking = use_chunking};
    /* static: the client borrows it until MESSAGE_DONE */
    static struct smtp_client_message keep;
    keep = msg;
    CHECK(smtp_client_start_message(&client, &keep) == 0);
    drain();
    CHECK_STR(log_buf, "ready;");
    log_len = 0; /* tests look at what follows */
    log_buf[0] = '\0';
}

static void
test_refusals(void)
{
    const char *plain = "250 mx\r\n";
    const char *piped = "250-mx\r\n250-CHUNKING\r\n250 PIPELINING\r\n";
    const char *head = "EHLO mx.example.net\r\nMAIL FROM:<s@y.example>\r\n";
    char want[512];

    /* MAIL refused, one by one: no RCPT, no RSET. */
    begin_message(plain, false);
    feed("550 5.7.1 sender refused\r\n");
    check_log_sent("done fail mail 550;ready;", head);
    CHECK_BYTES(last_done.reply.text.ptr, last_done.reply.text.len, "5.7.1 sender refused", 20);
    /* MAIL refused, pipelined: the rest is read, the MAIL reply decides,
     * then RSET. */
    begin_message(piped, false);
    feed("451 4.3.0 try later\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n554 no valid rcpt\r\n");
    (void)snprintf(want, sizeof(want), "%s%s", head,
                   "RCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\nRSET\r\n");
    check_log_sent("done defer mail 451;", want);
    CHECK_BYTES(last_done.reply.text.ptr, last_done.reply.text.len, "4.3.0 try later", 15);
    feed("250 ok\r\n");
    CHECK_STR(log_buf, "done defer mail 451;ready;");
    /* Nobody accepted, one by one: no DATA, RSET. */
    begin_message(plain, false);
    feed("250 ok\r\n550 no\r\n550 no either\r\n250 reset\r\n");
    (void)snprintf(want, sizeof(want), "%s%s", head,
                   "RCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nRSET\r\n");
    check_log_sent("rcpt 0 550 fail;rcpt 1 550 fail;done fail rcpt 550;ready;", want);
    /* Nobody accepted, one deferred: the message is deferred. */
    begin_message(piped, false);
    feed("250 ok\r\n550 no\r\n452 full\r\n554 5.5.1 no valid recipients\r\n250 ok\r\n");
    CHECK_STR(log_buf, "rcpt 0 550 fail;rcpt 1 452 defer;done defer rcpt 452;ready;");
    /* A server that says 354 with nobody accepted gets an empty body. */
    begin_message(piped, false);
    feed("250 ok\r\n550 no\r\n550 no\r\n354 go\r\n");
    (void)snprintf(want, sizeof(want), "%s%s", head,
                   "RCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n.\r\n");
    check_log_sent("rcpt 0 550 fail;rcpt 1 550 fail;", want);
    feed("554 no recipients\r\n");
    CHECK_STR(log_buf, "rcpt 0 550 fail;rcpt 1 550 fail;done fail rcpt 550;ready;");
    /* DATA refused after an accepted recipient: DATA's reply decides, RSET. */
    begin_message(piped, false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n451 4.3.0 later\r\n250 ok\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;done defer data 451;ready;");
    /* Final reply refused: 5xx for every accepted recipient, no RSET. */
    begin_message(piped, false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_client_body_sent(&client);
    feed("554 5.7.1 spam\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;done fail final 554;ready;");
    /* BDAT, nobody accepted: RSET, no BDAT. */
    begin_message(piped, true);
    feed("250 ok\r\n550 no\r\n550 no\r\n250 ok\r\n");
    (void)snprintf(want, sizeof(want), "%s%s", head,
                   "RCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nRSET\r\n");
    check_log_sent("rcpt 0 550 fail;rcpt 1 550 fail;done fail rcpt 550;ready;", want);
    /* BDAT MAIL refused, pipelined. */
    begin_message(piped, true);
    feed("550 no\r\n503 no\r\n503 no\r\n");
    CHECK_STR(log_buf, "done fail mail 550;");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_RSET);
    /* A non-last BDAT refused: DATA stage, RSET. */
    begin_message(piped, true);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n");
    smtp_client_bdat(&client, 10, false);
    drain();
    feed("452 4.3.1 full\r\n250 ok\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;done defer data 452;ready;");
    CHECK(strstr(sent, "BDAT 10\r\nRSET\r\n") != NULL);
    /* RSET refused: the session is not trusted any more. */
    begin_message(plain, false);
    feed("250 ok\r\n550 no\r\n550 no\r\n500 what\r\n");
    CHECK_STR(log_buf, "rcpt 0 550 fail;rcpt 1 550 fail;done fail rcpt 550;session-failed 500;");
    CHECK(strstr(sent, "RSET\r\nQUIT\r\n") != NULL);
}

static void
test_421(void)
{
    const char *piped = "250-mx\r\n250 PIPELINING\r\n";
    begin_message(piped, false);
    feed("250 ok\r\n421 4.3.2 shutting down\r\n");
    CHECK_STR(log_buf, "rcpt 0 421 defer;done defer rcpt 421 last;closed;");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_CLOSED);
    /* Bytes after CLOSED are dropped. */
    size_t used = 0;
    struct smtp_client_event ev;
    CHECK(smtp_client_feed(&client, (const uint8_t *)"250 x\r\n", 7, &used, &ev) ==
          SMTP_CLIENT_NEED_MORE);
    CHECK(used == 7);
    /* 421 after the final dot: deferred (possibly a duplicate later). */
    begin_message(piped, false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_client_body_sent(&client);
    feed("421 timeout\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;done defer final 421 last;closed;");
    /* 421 while idle (the server's idle timeout). */
    start();
    feed("220 mx\r\n250 mx\r\n421 idle too long\r\n");
    CHECK_STR(log_buf, "ready;session-failed 421;closed;");
    /* 421 while the body is being sent. */
    begin_message(piped, false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n421 bye\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;done defer data 421 last;closed;");
}

static void
test_protocol_errors(void)
{
    /* Garbage instead of a greeting. */
    start();
    feed("HTTP/1.1 400 Bad Request\r\n");
    CHECK_STR(log_buf, "error 1/reply syntax;");
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_FAILED);
    /* A greeting line over the bound. */
    start();
    static char big[SMTP_CLIENT_REPLY_LINE_BYTES_MAX + 8];
    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "220 ", 4);
    big[sizeof(big) - 1] = '\0';
    feed(big);
    CHECK_STR(log_buf, "error 1/reply line too long;");
    /* An EHLO reply with too many lines. */
    start();
    feed("220 mx\r\n");
    for (size_t i = 0; i < SMTP_CLIENT_REPLY_LINES_MAX; i++) {
        feed("250-X\r\n");
    }
    feed("250 X\r\n");
    CHECK_STR(log_buf, "error 1/too many reply lines;");
    /* A server that answers more replies than there were commands. */
    start();
    feed("220 mx\r\n250 mx\r\n250 extra\r\n");
    CHECK_STR(log_buf, "ready;error 2/ok;");
    begin_message("250-mx\r\n250 PIPELINING\r\n", false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 extra\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;error 2/ok msg;");
    /* Codes that make no sense for the command. */
    begin_message("250 mx\r\n", false);
    feed("354 go\r\n");
    CHECK_STR(log_buf, "error 3/ok msg;");
    begin_message("250-mx\r\n250 PIPELINING\r\n", false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n250 not 354\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;error 3/ok msg;");
    start();
    feed("354 hello\r\n");
    CHECK_STR(log_buf, "error 3/ok;");
    /* Multi-line reply whose code changes. */
    start();
    feed("220-mx\r\n554 no\r\n");
    CHECK_STR(log_buf, "error 1/reply code changes between lines;");
    /* Replies to commands we have not written yet (10,000 pipelined RCPTs
     * that the output cannot hold at once, answered in advance). */
    start();
    feed("220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
    static struct smtp_client_rcpt many[SMTP_RCPT_CEILING];
    for (size_t i = 0; i < SMTP_RCPT_CEILING; i++) {
        many[i].address = SPAN_LITERAL("someone@x.example");
    }
    static struct smtp_client_message msg;
    msg = (struct smtp_client_message){
        .mail_from = SPAN_LITERAL("s@y"), .rcpts = many, .rcpt_count = SMTP_RCPT_CEILING};
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    CHECK(smtp_client_output(&client).len <= SMTP_CLIENT_OUT_BYTES);
    size_t written = smtp_client_output(&client).len / strlen("RCPT TO:<someone@x.example>\r\n");
    size_t used = 0;
    struct smtp_client_event ev;
    static char flood[(SMTP_RCPT_CEILING + 1) * 8];
    for (size_t i = 0; i <= SMTP_RCPT_CEILING; i++) {
        memcpy(flood + i * 8, "250 ok\r\n", 8);
    }
    size_t pos = 0;
    size_t rcpt_events = 0;
    bool is_error = false;
    for (int guard = 0; guard < 100000 && pos < sizeof(flood) && !is_error; guard++) {
        enum smtp_client_status st = smtp_client_feed(&client, (const uint8_t *)flood + pos,
                                                      sizeof(flood) - pos, &used, &ev);
        pos += used;
        if (st == SMTP_CLIENT_EVENT) {
            rcpt_events += ev.kind == SMTP_CLIENT_EV_RCPT;
            is_error = ev.kind == SMTP_CLIENT_EV_PROTOCOL_ERROR;
        }
    }
    CHECK(is_error);
    CHECK(ev.error == SMTP_CLIENT_ERR_UNEXPECTED && ev.had_message);
    CHECK(written > 100 && written < SMTP_RCPT_CEILING);
    CHECK(rcpt_events == written);
}

/* 10,000 recipients pipelined through an 8 KiB output buffer. */
static void
test_many_rcpts(void)
{
    start();
    feed("220 mx\r\n250-mx\r\n250 PIPELINING\r\n");
    static struct smtp_client_rcpt many[SMTP_RCPT_CEILING];
    static char names[SMTP_RCPT_CEILING][16];
    for (size_t i = 0; i < SMTP_RCPT_CEILING; i++) {
        int n = snprintf(names[i], sizeof(names[i]), "u%zu@x", i);
        many[i].address = span_make(names[i], (size_t)n);
    }
    static struct smtp_client_message msg;
    msg = (struct smtp_client_message){
        .mail_from = SPAN_LITERAL("s@y"), .rcpts = many, .rcpt_count = SMTP_RCPT_CEILING};
    CHECK(smtp_client_start_message(&client, &msg) == 0);
    drain();
    CHECK(strstr(sent, "RCPT TO:<u9999@x>\r\nDATA\r\n") != NULL);
    static char replies[(SMTP_RCPT_CEILING + 1) * 8 + 16];
    size_t n = 0;
    for (size_t i = 0; i <= SMTP_RCPT_CEILING; i++) {
        memcpy(replies + n, i % 3 == 1 ? "550 no\r\n" : "250 ok\r\n", 8);
        n += 8;
    }
    memcpy(replies + n, "354 go\r\n", 9);
    feed(replies);
    size_t ok = 0;
    size_t fail = 0;
    for (const char *p = log_buf; (p = strstr(p, "rcpt ")) != NULL; p++) {
        const char *q = strchr(p, ';');
        if (q - p > 4 && memcmp(q - 2, "ok", 2) == 0) {
            ok++;
        } else {
            fail++;
        }
    }
    /* The log buffer caps what it keeps; count from the machine's view. */
    CHECK(ok + fail > 0);
    CHECK(client.rcpt_ok_count + client.rcpt_fail_count == SMTP_RCPT_CEILING);
    size_t want_fail = 0;
    for (size_t i = 1; i <= SMTP_RCPT_CEILING; i++) {
        want_fail += i % 3 == 1;
    }
    CHECK(client.rcpt_fail_count == want_fail);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_BODY);
}

/* Connection reuse: two messages on one session, READY between them. */
static void
test_reuse(void)
{
    begin_message("250-mx\r\n250 PIPELINING\r\n", false);
    feed("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_client_body_sent(&client);
    feed("250 ok\r\n");
    static struct smtp_client_message second;
    second = (struct smtp_client_message){
        .mail_from = SPAN_LITERAL("t@y.example"), .rcpts = two_rcpts + 1, .rcpt_count = 1};
    CHECK(smtp_client_start_message(&client, &second) == 0);
    drain();
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    smtp_client_body_sent(&client);
    feed("250 ok again\r\n");
    CHECK_STR(log_buf, "rcpt 0 250 ok;rcpt 1 250 ok;send-body;done ok final 250;ready;"
                       "rcpt 0 250 ok;send-body;done ok final 250;ready;");
    /* Probe with RSET before reuse. */
    smtp_client_rset(&client);
    drain();
    feed("250 ok\r\n");
    CHECK(strstr(sent, "DATA\r\nRSET\r\n") != NULL);
    CHECK(smtp_client_state(&client) == SMTP_CLIENT_STATE_READY);
}

static void
test_init(void)
{
    struct smtp_client_params params = {.helo_name = SPAN_LITERAL("")};
    CHECK(smtp_client_init(&client, &params) == -EINVAL);
    params.helo_name = SPAN_LITERAL("a b");
    CHECK(smtp_client_init(&client, &params) == -EINVAL);
    params.helo_name = SPAN_LITERAL("h\xc3\xb6st");
    CHECK(smtp_client_init(&client, &params) == -EINVAL);
    static char name[SMTP_CLIENT_HELO_BYTES_MAX + 1];
    memset(name, 'h', sizeof(name));
    params.helo_name = span_make(name, sizeof(name));
    CHECK(smtp_client_init(&client, &params) == -EINVAL);
    params.helo_name = span_make(name, sizeof(name) - 1);
    CHECK(smtp_client_init(&client, &params) == 0);
}

int
main(void)
{
    test_reply_parser();
    test_dotstuff();
    test_init();
    /* Whole, one byte at a time and in odd steps: the same events, the
     * same bytes. */
    static const size_t steps[] = {1000, 1, 7};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        test_rfc5321_d1(steps[i]);
        test_rfc2920(steps[i]);
        test_rfc3030(steps[i]);
    }
    test_helo_fallback();
    test_starttls();
    test_auth();
    test_parameters();
    test_refusals();
    test_421();
    test_protocol_errors();
    test_many_rcpts();
    test_reuse();
    UNIT_DONE();
}
