/*
 * tests/fuzz/fuzz_imap_fetch.c - libFuzzer harness for FETCH: item lists
 * framed by imap_reader and imap_parser and parsed by imap_fetch_parse(),
 * then one message's response written by imap_fetch_write().
 *
 * Input: three header bytes, the command text, a NUL, the message (without
 * a NUL the built-in multipart message is used).
 *   byte 0: 0x01 the harness writes "a FETCH 1 " (0x02: "a UID FETCH 1 ")
 *           before the text; 0x04 IMAP_FETCH_PARSE_F_QRESYNC; 0x08
 *           IMAP_PARSE_F_UTF8; 0x10 add_uid, 0x20 add_flags, 0x40
 *           add_modseq, 0x80 IMAP_QUOTE_UTF8 in the write options.
 *   byte 1: the small work buffer, 0..1020 bytes, so -E2BIG is common.
 *   byte 2: the MIME parts scratch (1..32, or IMAP_MIME_PARTS_MAX), the
 *           message's flags and keywords.
 * Every FETCH command in the text (at most COMMANDS_MAX) is written
 * against the message, copied to an exact-size heap buffer so ASan sees
 * any read outside it.
 *
 * Properties checked: write_range() stays inside the message; nothing is
 * written when imap_fetch_write() fails, and it fails only with -EINVAL or
 * -E2BIG; a response is "* seq FETCH (...)\r\n" with balanced parentheses
 * outside strings, quoted strings without CR, LF or NUL, literals whose
 * announced length matches and that hold no NUL unless they are literal8;
 * the small buffer succeeds only when the large one does and then gives
 * the same bytes; -EINVAL does not depend on the buffer; a request that
 * needs nothing gives the same bytes without data, one that needs the
 * header gives them from the header block alone, one that needs only the
 * size (whole-message sections) gives them from a message passed unread
 * when it holds no NUL. A broken property aborts.
 *
 * Build: see tests/meson.build (-Dfuzz=true).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap/imap_fetch.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_parser.h"
#include "proto/imap/imap_quote.h"
#include "proto/imap/imap_reader.h"
#include "tests/fuzz/fuzz_check.h"

#define HEADER_BYTES 3
#define READER_BUF_BYTES (32u * 1024)
#define NODES_MAX 1024
#define COMMANDS_MAX 4
#define CAPTURE_BYTES (1024u * 1024)
#define MSG_SEQ 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reader's literal table (lent to it, as the session lends its own). */
static struct imap_literal reader_literals[IMAP_LITERALS_CEILING];

static const char msg_multi[] =
    "Date: Tue, 3 Mar 2026 23:59:59 +1300\r\n"
    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>\r\n"
    "To: \"Team\" <team@example.org>, bob@example.net\r\n"
    "Cc: =?UTF-8?B?UsOpc3Vtw6kg4oCUIFEz?= <cv@example.com>\r\n"
    "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n =?UTF-8?Q?_aus_K=C3=B6ln?=\r\n"
    "Message-ID: <multi.1@example.de>\r\n"
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
    "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJw==\r\n"
    "--outer--\r\n";

static const char *const keyword_names[] = { "$Forwarded", "Junk", "$MDNSent", "NonJunk" };

static char reader_buf[READER_BUF_BYTES];
static struct imap_node nodes[NODES_MAX];
static struct imap_fetch_request req;
static struct imap_mime_part parts[IMAP_MIME_PARTS_MAX];
static char work_big[IMAP_FETCH_WORK_BYTES_DEFAULT];
static char work_small[1024];
static char capture[CAPTURE_BYTES];

/* What one imap_fetch_write() call produced. */
struct sink_state {
    const char *msg;
    size_t      msg_len;
    uint64_t    hash;      /* FNV-1a over every byte, whatever the call split */
    uint64_t    total;     /* bytes */
    size_t      captured;  /* bytes kept in capture (only for the checked run) */
    bool        is_capturing;
};

static void
sink_bytes(struct sink_state *s, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        s->hash = (s->hash ^ (unsigned char)bytes[i]) * 1099511628211ull;
    }
    if (s->is_capturing && s->total + len <= CAPTURE_BYTES) {
        memcpy(capture + s->total, bytes, len);
        s->captured = (size_t)s->total + len;
    }
    s->total += len;
}

static void
sink_write(void *ctx, const char *bytes, size_t len)
{
    struct sink_state *s = ctx;
    FUZZ_CHECK(bytes != NULL || len == 0);
    sink_bytes(s, bytes, len);
}

static void
sink_write_range(void *ctx, uint64_t offset, uint64_t len)
{
    struct sink_state *s = ctx;
    FUZZ_CHECK(offset <= s->msg_len);
    FUZZ_CHECK(len <= s->msg_len - offset);
    if (len > 0) {
        FUZZ_CHECK(s->msg != NULL);
        sink_bytes(s, s->msg + offset, (size_t)len);
    }
}

/* The captured response is one well-formed "* seq FETCH (...)\r\n". */
static void
check_response(const char *r, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "* %u FETCH (", MSG_SEQ);
    FUZZ_CHECK(n > 0 && (size_t)n < sizeof(head));
    FUZZ_CHECK(len >= (size_t)n + 3);
    FUZZ_CHECK(memcmp(r, head, (size_t)n) == 0);
    FUZZ_CHECK(memcmp(r + len - 3, ")\r\n", 3) == 0);
    long depth = 0;
    size_t i = 0;
    size_t end = len - 2;
    while (i < end) {
        char c = r[i];
        if (c == '"') {
            i++;
            while (i < end && r[i] != '"') {
                FUZZ_CHECK(r[i] != '\r' && r[i] != '\n' && r[i] != '\0');
                i += r[i] == '\\' ? 2 : 1;
            }
            FUZZ_CHECK(i < end);
            i++;
        } else if (c == '{' || (c == '~' && i + 1 < end && r[i + 1] == '{')) {
            bool is_binary = c == '~';
            i += is_binary ? 2 : 1;
            size_t lit = 0;
            size_t digits = 0;
            while (i < end && r[i] >= '0' && r[i] <= '9' && digits < 12) {
                lit = lit * 10 + (size_t)(r[i] - '0');
                i++;
                digits++;
            }
            FUZZ_CHECK(digits > 0);
            FUZZ_CHECK(i + 3 <= end && memcmp(r + i, "}\r\n", 3) == 0);
            i += 3;
            FUZZ_CHECK(lit <= end - i);
            if (!is_binary) {
                FUZZ_CHECK(memchr(r + i, '\0', lit) == NULL);
            }
            i += lit;
        } else {
            FUZZ_CHECK(c != '\r' && c != '\n' && c != '\0');
            depth += c == '(';
            depth -= c == ')';
            FUZZ_CHECK(depth >= 0);
            i++;
        }
    }
    FUZZ_CHECK(i == end);
    FUZZ_CHECK(depth == 0);
}

/* The file's bytes for a message passed unread (data NULL): write_range
 * reads them from here, as the daemon's splice reads the file. */
static const char *unread_bytes;

static int
write_one(const struct imap_fetch_request *request, const struct imap_message *msg,
          const struct imap_fetch_options *options, char *buf, size_t buf_bytes,
          size_t parts_cap, struct sink_state *state, bool is_capturing)
{
    memset(state, 0, sizeof(*state));
    state->msg = msg->data != NULL ? msg->data : unread_bytes;
    state->msg_len = msg->data_len;
    state->hash = 1469598103934665603ull;
    state->is_capturing = is_capturing;
    struct imap_fetch_sink sink = { .ctx = state, .write = sink_write,
                                    .write_range = sink_write_range };
    struct imap_fetch_work work = { .parts = parts, .parts_cap = parts_cap, .buf = buf,
                                    .buf_bytes = buf_bytes };
    int rc = imap_fetch_write(request, msg, options, &work, &sink);
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -E2BIG);
    if (rc != 0) {
        FUZZ_CHECK(state->total == 0);
        const char *text = imap_fetch_error_text(rc);
        FUZZ_CHECK(text != NULL && text[0] != '\0');
    }
    return rc;
}

static void
run_request(const char *msg_data, size_t msg_len, uint8_t b0, uint8_t b1, uint8_t b2)
{
    FUZZ_CHECK(req.section_count <= IMAP_FETCH_SECTIONS_MAX);
    FUZZ_CHECK(req.field_count <= IMAP_FETCH_FIELDS_MAX);
    for (size_t i = 0; i < req.section_count; i++) {
        const struct imap_fetch_section *sec = &req.sections[i];
        FUZZ_CHECK(sec->field_first + sec->field_count <= req.field_count);
        FUZZ_CHECK(!sec->is_partial || sec->partial_len >= 1);
        FUZZ_CHECK(sec->part_depth <= IMAP_MIME_DEPTH_MAX);
    }
    struct imap_message msg;
    memset(&msg, 0, sizeof(msg));
    msg.seq = MSG_SEQ;
    msg.uid = 4000000000u;
    msg.flags = (uint32_t)b2 & (IMAP_FLAGS_STORABLE | IMAP_FLAG_RECENT);
    msg.keyword_mask = (uint32_t)b2 >> 4;
    msg.keyword_names = keyword_names;
    msg.keyword_count = sizeof(keyword_names) / sizeof(keyword_names[0]);
    msg.modseq = UINT64_MAX - b2;
    msg.internal_date = 760686745 - (int64_t)b1 * 86399;
    msg.internal_date_tz_minutes = ((int32_t)b2 - 128) * 7;
    msg.size = msg_len;
    msg.data = msg_data;
    msg.data_len = msg_len;
    struct imap_fetch_options options = {
        .add_uid = (b0 & 0x10) != 0,
        .add_flags = (b0 & 0x20) != 0,
        .add_modseq = (b0 & 0x40) != 0,
        .quote_flags = (b0 & 0x80) ? IMAP_QUOTE_UTF8 : 0,
    };
    size_t parts_cap = (b2 & 0x20) ? IMAP_MIME_PARTS_MAX : 1 + (size_t)(b2 & 31);

    struct sink_state big;
    int rc_big =
        write_one(&req, &msg, &options, work_big, sizeof(work_big), parts_cap, &big, true);
    if (rc_big == 0 && big.total <= CAPTURE_BYTES) {
        FUZZ_CHECK(big.captured == big.total);
        check_response(capture, big.captured);
    }

    size_t small_bytes = (size_t)b1 * 4;
    struct sink_state small;
    int rc_small =
        write_one(&req, &msg, &options, b1 ? work_small : NULL, small_bytes, parts_cap, &small,
                  false);
    if (rc_small == 0) {
        FUZZ_CHECK(rc_big == 0);
        FUZZ_CHECK(small.total == big.total && small.hash == big.hash);
    }
    if (rc_small == -EINVAL) {
        FUZZ_CHECK(rc_big == -EINVAL);
    }
    if (rc_big == -EINVAL) {
        FUZZ_CHECK(rc_small != 0);
    }

    /* Less data, as the request's needs allow: the same response. */
    if (req.needs == IMAP_FETCH_NEEDS_SIZE && memchr(msg_data, '\0', msg_len) == NULL) {
        /* Unread, known NUL-free: the bytes go by write_range alone. */
        struct imap_message unread = msg;
        unread.data = NULL;
        unread.is_nul_free = true;
        unread_bytes = msg_data;
        struct sink_state other;
        int rc = write_one(&req, &unread, &options, work_big, sizeof(work_big), parts_cap,
                           &other, false);
        unread_bytes = NULL;
        FUZZ_CHECK(rc == rc_big);
        FUZZ_CHECK(other.total == big.total && other.hash == big.hash);
    } else if (req.needs == IMAP_FETCH_NEEDS_NOTHING) {
        struct imap_message bare = msg;
        bare.data = NULL;
        bare.data_len = 0;
        struct sink_state other;
        int rc = write_one(&req, &bare, &options, work_big, sizeof(work_big), parts_cap, &other,
                           false);
        FUZZ_CHECK(rc == rc_big);
        FUZZ_CHECK(other.total == big.total && other.hash == big.hash);
    } else if (req.needs == IMAP_FETCH_NEEDS_HEADER) {
        struct imap_mime_part one;
        struct imap_mime_result mres;
        FUZZ_CHECK(imap_mime_parse(msg_data, msg_len, &one, 1, &mres) == 0);
        size_t hlen = (size_t)one.header_size;
        FUZZ_CHECK(hlen <= msg_len);
        char *head = malloc(hlen > 0 ? hlen : 1);
        FUZZ_CHECK(head != NULL);
        memcpy(head, msg_data, hlen);
        struct imap_message top = msg;
        top.data = head;
        top.data_len = hlen;
        struct sink_state other;
        int rc = write_one(&req, &top, &options, work_big, sizeof(work_big), parts_cap, &other,
                           false);
        FUZZ_CHECK(rc == rc_big);
        FUZZ_CHECK(other.total == big.total && other.hash == big.hash);
        free(head);
    }
}

static void
handle_command(const struct imap_reader *reader, const char *msg_data, size_t msg_len,
               uint8_t b0, uint8_t b1, uint8_t b2)
{
    struct imap_command_text cmd = imap_reader_command(reader);
    struct imap_parsed parsed;
    unsigned pflags = (b0 & 0x08) ? IMAP_PARSE_F_UTF8 : 0;
    if (imap_parser_parse(&cmd, pflags, nodes, NODES_MAX, &parsed) != IMAP_PARSE_OK ||
        parsed.command != IMAP_CMD_FETCH) {
        return;
    }
    uint32_t seq = imap_node_first_child(&parsed, 0);
    uint32_t first = seq == IMAP_NODE_NONE ? IMAP_NODE_NONE : imap_node_next(&parsed, seq);
    unsigned flags = parsed.is_uid ? IMAP_FETCH_PARSE_F_UID : 0;
    flags |= (b0 & 0x04) ? IMAP_FETCH_PARSE_F_QRESYNC : 0;
    const char *text = NULL;
    /* Dirty request: the parser must not rely on zeroed memory. */
    memset(&req, 0xa5, sizeof(req));
    enum imap_fetch_parse_result r = imap_fetch_parse(&parsed, first, flags, &req, &text);
    FUZZ_CHECK(text != NULL);
    if (r != IMAP_FETCH_PARSE_OK) {
        FUZZ_CHECK(r == IMAP_FETCH_PARSE_BAD || r == IMAP_FETCH_PARSE_TOO_MANY);
        FUZZ_CHECK(text[0] != '\0');
        return;
    }
    if (parsed.is_uid) {
        FUZZ_CHECK(req.items & IMAP_FETCH_UID);
    }
    if (req.is_vanished) {
        FUZZ_CHECK(parsed.is_uid && (flags & IMAP_FETCH_PARSE_F_QRESYNC));
    }
    run_request(msg_data, msg_len, b0, b1, b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HEADER_BYTES) {
        return 0;
    }
    uint8_t b0 = data[0];
    uint8_t b1 = data[1];
    uint8_t b2 = data[2];
    const char *rest = (const char *)data + HEADER_BYTES;
    size_t rest_len = size - HEADER_BYTES;
    const char *nul = memchr(rest, '\0', rest_len);
    size_t cmd_len = nul != NULL ? (size_t)(nul - rest) : rest_len;
    size_t msg_len = nul != NULL ? rest_len - cmd_len - 1 : sizeof(msg_multi) - 1;
    char *msg = malloc(msg_len > 0 ? msg_len : 1);
    FUZZ_CHECK(msg != NULL);
    memcpy(msg, nul != NULL ? nul + 1 : msg_multi, msg_len);

    const char *prefix = "";
    if (b0 & 0x01) {
        prefix = (b0 & 0x02) ? "a UID FETCH 1 " : "a FETCH 1 ";
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
            handle_command(&reader, msg, msg_len, b0, b1, b2);
            if (++commands >= COMMANDS_MAX) {
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
