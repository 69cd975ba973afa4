/*
 * tests/fuzz/fuzz_imap_search.c - libFuzzer harness for SEARCH: a command
 * framed by imap_reader and imap_parser, compiled by imap_search_parse(),
 * matched against a small mailbox and answered by imap_search_format().
 *
 * Input: three header bytes, then the command text, then optionally a NUL
 * and a message of the fuzzer's own.
 *   byte 0: 0x01 IMAP_SEARCH_F_REV2, 0x02 IMAP_PARSE_F_UTF8, 0x04 the
 *           harness writes "a SEARCH " (0x08: "a UID SEARCH ") before the
 *           text so the fuzzer can spend its bytes on search keys; bits 4-5
 *           pick the storage (tiny, small, modest, the defaults) so its
 *           limits are hit often; 0x40 a second CRLF-less command is kept.
 *   byte 1: the room of the small answer buffer (0..255) and the "now".
 *   byte 2: the MIME parts scratch (1..16, or IMAP_MIME_PARTS_MAX), flags
 *           and keywords of the messages.
 * The mailbox: 1 a simple text message, 2 a multipart message (base64,
 * quoted-printable, RFC 2047 words in three charsets, an attached
 * message/rfc822, Shift_JIS and binary parts), 3 the fuzzer's message (or
 * an empty one), 4 and 5 the first two again without data.
 *
 * Properties checked: the program's needs match imap_search_needs(); with
 * no needs a message matches the same with and without data; with only
 * header needs the same with the header block alone; with body needs the
 * same from the message's body text (imap_search_body_text, the cached
 * form) and the header block alone as from the whole message, and the body
 * text made in a buffer one byte short reports -ENOBUFS; the answer fits a
 * generous buffer, looks like "* SEARCH ..." / "* ESEARCH ..." on one line,
 * and in a small room reports -ENOBUFS exactly when it does not fit, stays
 * inside the room and leaves a prefix of the full answer. Any sanitizer
 * report or broken property aborts.
 *
 * Build: see tests/meson.build (-Dfuzz=true).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_reader.h"
#include "proto/imap/imap_search.h"
#include "tests/fuzz/fuzz_check.h"

#define HEADER_BYTES 3
#define READER_BUF_BYTES (32u * 1024)
#define NODES_MAX 1024
#define MAILBOX_SIZE 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static const char msg_simple[] =
    "Return-Path: <foobar@Blurdybloop.example>\r\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\n"
    "From: Fred Foobar <foobar@Blurdybloop.example>\r\n"
    "Subject: afternoon meeting\r\n"
    "To: mooch@owatagu.example\r\n"
    "Cc: =?ISO-8859-1?Q?Andr=E9?= <andre@example.org>\r\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    "\r\n"
    "Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";

static const char msg_multi[] =
    "Date: Tue, 3 Mar 2026 23:59:59 +1300\r\n"
    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>\r\n"
    "To: \"Team\" <team@example.org>, bob@example.net\r\n"
    "Cc: =?UTF-8?B?UsOpc3Vtw6kg4oCUIFEz?= <cv@example.com>\r\n"
    "Bcc: undisclosed-recipients:;\r\n"
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n =?UTF-8?Q?_aus_K=C3=B6ln?=\r\n"
    "Message-ID: <multi.1@example.de>\r\n"
    "X-Priority: 1\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "R3LDvMOfZSBhdXMgS8O2bG4g4oCUIMOcYmVybW9yZ2VuIHVtIDE1IFVocj8NCtCW0LTRgyDQvtGC0LLQtdGC\r\n"
    "0LAuDQo=\r\n"
    "--inner\r\n"
    "Content-Type: text/html; charset=windows-1252\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<p>Caf=E9 cr=E8me =E0 3=80? Tr=E8s=\r\n"
    " bien.</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "From: ivan@example.ru\r\n"
    "Subject: =?KOI8-R?B?8NLJ18XU?=\r\n"
    "Content-Type: text/plain; charset=koi8-r\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "8NLJ18XULCDNydIhIPzUzyDUxdPULg0K\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=shift_jis\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "k/qWe4zqgsyDZYNMg1iDZw==\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw==\r\n"
    "--outer--\r\n";

static const char *const keyword_names[] = { "$Forwarded", "Junk", "$MDNSent", "NonJunk" };

struct storage_size {
    size_t keys;
    size_t ranges;
    size_t text;
};

static const struct storage_size storage_sizes[4] = {
    { 2, 1, 8 },
    { 12, 6, 96 },
    { 64, 64, 2048 },
    { IMAP_SEARCH_KEYS_DEFAULT, IMAP_SEARCH_RANGES_DEFAULT, IMAP_SEARCH_TEXT_BYTES_DEFAULT },
};

static char reader_buf[READER_BUF_BYTES];
static struct imap_node nodes[NODES_MAX];
static struct imap_search_key keys[IMAP_SEARCH_KEYS_DEFAULT];
static struct imap_seq_range ranges[IMAP_SEARCH_RANGES_DEFAULT];
static char arena[IMAP_SEARCH_TEXT_BYTES_DEFAULT];
static struct imap_mime_part parts[IMAP_MIME_PARTS_MAX];

struct fuzz_input {
    uint8_t     b0;
    uint8_t     b1;
    uint8_t     b2;
    const char *fuzz_msg;     /* exact-size heap copy, or NULL */
    size_t      fuzz_msg_len;
};

/* Bytes of the header block of data (with the blank line). */
static size_t
header_len(const char *data, size_t len)
{
    struct imap_mime_part one;
    struct imap_mime_result result;
    FUZZ_CHECK(imap_mime_parse(data, len, &one, 1, &result) == 0);
    FUZZ_CHECK(one.header_size <= len);
    return (size_t)one.header_size;
}

static void
message_fill(struct imap_message *m, uint32_t seq, uint32_t uid, const char *data, size_t len,
             uint8_t b2)
{
    memset(m, 0, sizeof(*m));
    m->seq = seq;
    m->uid = uid;
    m->flags = (uint32_t)(b2 >> 2) & (IMAP_FLAGS_STORABLE | IMAP_FLAG_RECENT);
    m->flags ^= seq & 1 ? IMAP_FLAG_SEEN : 0;
    m->keyword_names = keyword_names;
    m->keyword_count = sizeof(keyword_names) / sizeof(keyword_names[0]);
    m->keyword_mask = ((uint32_t)b2 >> seq) & 0xfu;
    m->modseq = 100u + seq * 7u;
    m->internal_date = 760686745 + (int64_t)seq * 86399;
    m->internal_date_tz_minutes = seq & 1 ? -480 : 780;
    m->size = len;
    m->data = data;
    m->data_len = len;
}

static void
check_format(const struct imap_search *s, struct span tag, const uint32_t *numbers, size_t count,
             uint64_t modseq, size_t room)
{
    size_t big_room = 512 + 2 * tag.len + 16 * count;
    char *big = malloc(big_room);
    char *small = malloc(room + 1);
    FUZZ_CHECK(big != NULL && small != NULL);
    struct imap_out out;
    imap_out_init(&out, big, big_room);
    FUZZ_CHECK(imap_search_format(s, tag, numbers, count, modseq, &out) == 0);
    FUZZ_CHECK(!out.is_overflow && out.len <= big_room);
    const char *want = s->is_esearch ? "* ESEARCH" : "* SEARCH";
    FUZZ_CHECK(out.len >= strlen(want) + 2);
    FUZZ_CHECK(memcmp(big, want, strlen(want)) == 0);
    FUZZ_CHECK(memcmp(big + out.len - 2, "\r\n", 2) == 0);
    FUZZ_CHECK(memchr(big, '\r', out.len - 2) == NULL);
    FUZZ_CHECK(memchr(big, '\n', out.len - 2) == NULL);

    small[room] = 0x5a;
    struct imap_out tight;
    imap_out_init(&tight, small, room);
    int rc = imap_search_format(s, tag, numbers, count, modseq, &tight);
    FUZZ_CHECK(rc == (out.len > room ? -ENOBUFS : 0));
    FUZZ_CHECK(tight.len <= room);
    FUZZ_CHECK(small[room] == 0x5a);
    FUZZ_CHECK(memcmp(small, big, tight.len) == 0);
    if (rc == 0) {
        FUZZ_CHECK(tight.len == out.len);
    }
    free(small);
    free(big);
}

/* The cached body text answers as the message: made from the whole
 * message (scratch of the same parts_cap as the match), exact-size copies
 * of it and of the header block, the same answer; and bounded. */
static void
check_body_text(const struct imap_search *s, const struct imap_message *m,
                const struct imap_search_context *ctx, bool is_match)
{
    static char text_buf[256 * 1024];
    size_t body_len;
    size_t len;
    int rc = imap_search_body_text(m->data, m->data_len, ctx->parts, ctx->parts_cap, text_buf,
                                   sizeof(text_buf), &body_len, &len);
    if (rc != 0) {
        FUZZ_CHECK(rc == -ENOBUFS);
        return;
    }
    FUZZ_CHECK(body_len <= len && len <= sizeof(text_buf));
    char *text = malloc(len > 0 ? len : 1);
    size_t hlen = header_len(m->data, m->data_len);
    char *head = malloc(hlen > 0 ? hlen : 1);
    FUZZ_CHECK(text != NULL && head != NULL);
    memcpy(text, text_buf, len);
    memcpy(head, m->data, hlen);
    struct imap_message cached = *m;
    cached.data = head;
    cached.data_len = hlen;
    cached.body_folded = text;
    cached.body_folded_len = body_len;
    cached.body_folded_text_len = len;
    FUZZ_CHECK(imap_search_match(s, &cached, ctx) == is_match);
    if (len > 0) {
        size_t bl;
        size_t tl;
        FUZZ_CHECK(imap_search_body_text(m->data, m->data_len, ctx->parts, ctx->parts_cap,
                                         text_buf, len - 1, &bl, &tl) == -ENOBUFS);
    }
    free(head);
    free(text);
}

static void
run_search(const struct imap_search *s, const struct imap_parsed *parsed,
           const struct fuzz_input *in)
{
    unsigned needs = imap_search_needs(s);
    FUZZ_CHECK(needs == s->needs);
    FUZZ_CHECK((needs & ~(IMAP_SEARCH_NEEDS_HEADER | IMAP_SEARCH_NEEDS_BODY)) == 0);
    FUZZ_CHECK(s->root != IMAP_SEARCH_NONE && s->root < s->key_count);
    FUZZ_CHECK(s->is_uid == parsed->is_uid);
    if (!s->is_esearch) {
        FUZZ_CHECK(s->return_mask == 0);
    }

    const char *fuzz_data = in->fuzz_msg != NULL ? in->fuzz_msg : "";
    struct {
        const char *data;
        size_t      len;
    } bodies[MAILBOX_SIZE] = {
        { msg_simple, sizeof(msg_simple) - 1 },
        { msg_multi, sizeof(msg_multi) - 1 },
        { fuzz_data, in->fuzz_msg_len },
        { NULL, 0 },
        { NULL, 0 },
    };
    static const uint32_t uids[MAILBOX_SIZE] = { 3, 8, 9, 15, 100 };
    struct imap_search_context ctx = {
        .messages = MAILBOX_SIZE,
        .uid_max = uids[MAILBOX_SIZE - 1] + (in->b1 & 1),
        .now = 1772535600 + (int64_t)(in->b1 >> 1) * 86400 * 97,
        .parts = parts,
        .parts_cap = (in->b2 & 0x10) ? IMAP_MIME_PARTS_MAX : 1 + (size_t)(in->b2 & 15),
    };
    uint32_t numbers[MAILBOX_SIZE];
    uint64_t modseqs[MAILBOX_SIZE];
    size_t count = 0;
    for (uint32_t i = 0; i < MAILBOX_SIZE; i++) {
        struct imap_message m;
        message_fill(&m, i + 1, uids[i], bodies[i].data, bodies[i].len, in->b2);
        if (bodies[i].data == NULL) {
            /* The index knows the size even when no data is loaded. */
            m.size = i == 3 ? sizeof(msg_simple) - 1 : sizeof(msg_multi) - 1;
        }
        bool is_match = imap_search_match(s, &m, &ctx);
        FUZZ_CHECK(imap_search_match(s, &m, &ctx) == is_match);
        if (m.data != NULL && needs == 0) {
            struct imap_message bare = m;
            bare.data = NULL;
            bare.data_len = 0;
            FUZZ_CHECK(imap_search_match(s, &bare, &ctx) == is_match);
        }
        if (m.data != NULL && (needs & IMAP_SEARCH_NEEDS_BODY) == 0) {
            /* The header block alone, in an exact-size copy. */
            size_t hlen = header_len(m.data, m.data_len);
            char *head = malloc(hlen > 0 ? hlen : 1);
            FUZZ_CHECK(head != NULL);
            memcpy(head, m.data, hlen);
            struct imap_message top = m;
            top.data = head;
            top.data_len = hlen;
            FUZZ_CHECK(imap_search_match(s, &top, &ctx) == is_match);
            free(head);
        }
        if (m.data != NULL && imap_search_body_text_suffices(s)) {
            check_body_text(s, &m, &ctx, is_match);
        }
        if (is_match) {
            numbers[count] = s->is_uid ? m.uid : m.seq;
            modseqs[count] = m.modseq;
            count++;
        }
    }
    uint64_t highest = 0;
    for (size_t i = 0; i < count; i++) {
        bool is_end = i == 0 || i + 1 == count;
        if ((!imap_search_modseq_of_ends(s) || is_end) && modseqs[i] > highest) {
            highest = modseqs[i];
        }
    }
    check_format(s, parsed->tag, numbers, count, highest, in->b1);
}

static void
handle_command(const struct imap_reader *reader, const struct fuzz_input *in)
{
    struct imap_command_text cmd = imap_reader_command(reader);
    struct imap_parsed parsed;
    unsigned pflags = (in->b0 & 0x02) ? IMAP_PARSE_F_UTF8 : 0;
    if (imap_parser_parse(&cmd, pflags, nodes, NODES_MAX, &parsed) != IMAP_PARSE_OK ||
        parsed.command != IMAP_CMD_SEARCH) {
        return;
    }
    const struct storage_size *sz = &storage_sizes[(in->b0 >> 4) & 3];
    struct imap_search_storage storage = {
        .keys = keys, .keys_max = sz->keys,
        .ranges = ranges, .ranges_max = sz->ranges,
        .text = arena, .text_bytes = sz->text,
    };
    /* Dirty storage: the compiler must not rely on zeroed memory. */
    memset(keys, 0xa5, sz->keys * sizeof(keys[0]));
    memset(arena, 0xa5, sz->text);
    struct imap_search s;
    unsigned sflags = (in->b0 & 0x01) ? IMAP_SEARCH_F_REV2 : 0;
    enum imap_search_error err =
        imap_search_parse(&s, &parsed, imap_node_first_child(&parsed, 0), sflags, &storage);
    const char *text = imap_search_error_text(err);
    FUZZ_CHECK(text != NULL && text[0] != '\0');
    if (err != IMAP_SEARCH_OK) {
        FUZZ_CHECK(err <= IMAP_SEARCH_TEXT_FULL);
        return;
    }
    FUZZ_CHECK(s.key_count >= 1 && s.key_count <= sz->keys);
    FUZZ_CHECK(s.keys == keys);
    run_search(&s, &parsed, in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_BYTES) {
        return 0;
    }
    struct fuzz_input in = { .b0 = data[0], .b1 = data[1], .b2 = data[2] };
    const char *rest = (const char *)data + HEADER_BYTES;
    size_t rest_len = size - HEADER_BYTES;
    const char *nul = memchr(rest, '\0', rest_len);
    size_t cmd_len = nul != NULL ? (size_t)(nul - rest) : rest_len;
    char *msg = NULL;
    if (nul != NULL) {
        in.fuzz_msg_len = rest_len - cmd_len - 1;
        msg = malloc(in.fuzz_msg_len > 0 ? in.fuzz_msg_len : 1);
        FUZZ_CHECK(msg != NULL);
        memcpy(msg, nul + 1, in.fuzz_msg_len);
        in.fuzz_msg = msg;
    }

    /* The command: optional prefix, the text, CRLF. */
    const char *prefix = "";
    if (in.b0 & 0x04) {
        prefix = (in.b0 & 0x08) ? "a UID SEARCH " : "a SEARCH ";
    }
    size_t prefix_len = strlen(prefix);
    size_t line_len = prefix_len + cmd_len + 2;
    char *line = malloc(line_len);
    FUZZ_CHECK(line != NULL);
    memcpy(line, prefix, prefix_len);
    memcpy(line + prefix_len, rest, cmd_len);
    memcpy(line + prefix_len + cmd_len, "\r\n", 2);

    struct imap_reader_config config;
    imap_reader_config_default(&config, 1u << 20);
    config.line_bytes_max = READER_BUF_BYTES / 2;
    config.literal_bytes_max = READER_BUF_BYTES / 4;
    config.inline_bytes_max = READER_BUF_BYTES / 4;
    struct imap_reader reader;
    imap_reader_init(&reader, &config, reader_buf, sizeof(reader_buf), reader_literals);
    size_t pos = 0;
    size_t rounds = 0;
    size_t commands = 0;
    while (pos < line_len && ++rounds <= 2 * line_len + 16) {
        size_t used = 0;
        enum imap_reader_event ev = imap_reader_feed(&reader, line + pos, line_len - pos, &used);
        FUZZ_CHECK(used <= line_len - pos);
        pos += used;
        if (ev == IMAP_READER_COMMAND) {
            handle_command(&reader, &in);
            /* Usually one command; 0x40 lets a second one through. */
            if (++commands >= ((in.b0 & 0x40) ? 2u : 1u)) {
                break;
            }
        } else if (ev == IMAP_READER_FATAL) {
            break;
        }
    }
    free(line);
    free(msg);
    return 0;
}
