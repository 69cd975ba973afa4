/*
 * tests/unit/test_bench_message.c - the messages toaster-bench sends
 * (bench/bench_message.c).
 *
 * "Size" is what bench_message.h defines: head + tail, with CRLF line ends,
 * before dot-stuffing and without the DATA terminator. That is the BDAT LAST
 * chunk byte for byte, the SIZE= value, and what a server stores behind its
 * trace headers once it has undone the stuffing. For many sizes (every size
 * just above the smallest allowed, around the MIME threshold, then spread up
 * to 1 MiB) the test builds the message both ways and checks: the exact
 * size; CRLF only; no line over 998 octets (78 with short addresses); the
 * DATA form is the stuffed BDAT form plus ".\r\n", with no early end and a
 * round trip through unstuffing; the headers; and from 16 KiB up a
 * multipart/mixed body whose boundary delimits the parts and whose base64
 * attachment decodes strictly.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench/bench_message.h"
#include "core/base64.h"
#include "unit.h"

#define FROM "sender@example.test"
#define RFC5322_LINE_OCTETS_MAX 998
#define SHORT_LINE_CHARS_MAX 78

struct buf {
    char  *bytes;
    size_t len;
};

static char *
xmalloc(size_t n)
{
    char *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        abort();
    }
    return p;
}

static bool
has_prefix(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && memcmp(p, prefix, k) == 0;
}

static const char *
find(const char *hay, size_t hay_len, const char *needle)
{
    return memmem(hay, hay_len, needle, strlen(needle));
}

static size_t
count(const char *hay, size_t hay_len, const char *needle)
{
    size_t n = 0;
    size_t k = strlen(needle);
    const char *p = hay;
    const char *end = hay + hay_len;
    while ((p = memmem(p, (size_t)(end - p), needle, k)) != NULL) {
        n++;
        p += k;
    }
    return n;
}

/* The message as a BDAT chunk and as DATA sends it. */
struct wire {
    struct buf bdat;
    struct buf data;
    size_t     head_len;
};

static struct wire
wire_build(const struct bench_message *message, size_t index,
           const struct bench_message_head_args *args)
{
    const struct bench_message_body *body = bench_message_class(message, index);
    size_t head_max = bench_message_head_bytes_max(message);
    char *head = xmalloc(head_max);
    struct wire w;

    w.head_len = bench_message_head(message, index, args, head, head_max);
    w.bdat.len = w.head_len + body->tail_bytes;
    w.bdat.bytes = xmalloc(w.bdat.len);
    memcpy(w.bdat.bytes, head, w.head_len);
    memcpy(w.bdat.bytes + w.head_len, body->tail, body->tail_bytes);
    w.data.len = w.head_len + body->tail_data_bytes;
    w.data.bytes = xmalloc(w.data.len);
    memcpy(w.data.bytes, head, w.head_len);
    memcpy(w.data.bytes + w.head_len, body->tail_data, body->tail_data_bytes);
    free(head);
    return w;
}

static void
wire_free(struct wire *w)
{
    free(w->bdat.bytes);
    free(w->data.bytes);
}

/* CRLF line ends only, 7-bit text, bounded lines, ends in CRLF. Returns
 * the longest line (without CRLF). */
static size_t
check_lines(const char *p, size_t n)
{
    bool is_ok = n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n';
    size_t longest = 0;
    size_t line = 0;
    for (size_t i = 0; i < n && is_ok; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\r') {
            is_ok = i + 1 < n && p[i + 1] == '\n'; /* no bare CR */
        } else if (c == '\n') {
            is_ok = i > 0 && p[i - 1] == '\r'; /* no bare LF */
            line = 0;
            continue;
        } else {
            is_ok = c >= 0x20 && c < 0x7f; /* 7bit as declared: no NUL, no tab */
            line++;
        }
        if (line > longest) {
            longest = line;
        }
    }
    CHECK(is_ok);
    CHECK(longest <= RFC5322_LINE_OCTETS_MAX);
    return longest;
}

/* RFC 5321 4.5.2 in reverse: the lines up to a lone ".", each with one
 * leading dot removed. Returns false if the terminator is not the end. */
static bool
unstuff(const struct buf *data, struct buf *out)
{
    out->bytes = xmalloc(data->len);
    out->len = 0;
    size_t pos = 0;
    while (pos < data->len) {
        const char *crlf = find(data->bytes + pos, data->len - pos, "\r\n");
        if (crlf == NULL) {
            return false;
        }
        size_t line_len = (size_t)(crlf - (data->bytes + pos));
        const char *line = data->bytes + pos;
        pos += line_len + 2;
        if (line_len == 1 && line[0] == '.') {
            return pos == data->len; /* the end of data, and nothing after it */
        }
        if (line_len > 0 && line[0] == '.') {
            line++;
            line_len--;
        }
        memcpy(out->bytes + out->len, line, line_len);
        memcpy(out->bytes + out->len + line_len, "\r\n", 2);
        out->len += line_len + 2;
    }
    return false; /* no terminator */
}

/* The value of a header (unfolded, first occurrence) into out. */
static bool
header_value(const char *head, size_t head_len, const char *name, char *out, size_t out_bytes)
{
    size_t name_len = strlen(name);
    size_t pos = 0;
    while (pos < head_len) {
        const char *line = head + pos;
        const char *crlf = find(line, head_len - pos, "\r\n");
        if (crlf == NULL || crlf == line) {
            return false; /* end of the header block */
        }
        size_t line_len = (size_t)(crlf - line);
        pos += line_len + 2;
        if (line_len <= name_len || strncasecmp(line, name, name_len) != 0 ||
            line[name_len] != ':') {
            continue;
        }
        size_t n = 0;
        const char *v = line + name_len + 1;
        size_t v_len = line_len - name_len - 1;
        for (;;) {
            while (v_len > 0 && *v == ' ') {
                v++;
                v_len--;
            }
            if (n + v_len + 2 > out_bytes) {
                return false;
            }
            if (n > 0) {
                out[n++] = ' ';
            }
            memcpy(out + n, v, v_len);
            n += v_len;
            /* Folded continuation lines start with white space. */
            if (pos < head_len && (head[pos] == ' ' || head[pos] == '\t')) {
                const char *next = find(head + pos, head_len - pos, "\r\n");
                if (next == NULL) {
                    return false;
                }
                v = head + pos;
                v_len = (size_t)(next - v);
                pos += v_len + 2;
                continue;
            }
            break;
        }
        out[n] = '\0';
        return true;
    }
    return false;
}

/* Strict RFC 2045 base64: lines of 76 characters (the last may be
 * shorter), whole quads, '=' only as final padding, zero pad bits. Returns
 * the decoded length, or -1. */
static long
base64_decode_strict(const char *p, size_t n)
{
    long decoded = 0;
    size_t pos = 0;
    bool is_done = false;
    while (pos < n) {
        const char *crlf = find(p + pos, n - pos, "\r\n");
        if (crlf == NULL || is_done) {
            return -1;
        }
        size_t line_len = (size_t)(crlf - (p + pos));
        if (line_len == 0 || line_len > 76 || line_len % 4 != 0) {
            return -1;
        }
        bool is_last_line = pos + line_len + 2 == n;
        if (!is_last_line && line_len != 76) {
            return -1;
        }
        for (size_t q = 0; q < line_len; q += 4) {
            const char *quad = p + pos + q;
            int v[4];
            int pad = 0;
            for (int k = 0; k < 4; k++) {
                if (quad[k] == '=') {
                    v[k] = 0;
                    pad++;
                    continue;
                }
                if (pad > 0) {
                    return -1; /* data after padding */
                }
                v[k] = base64_digit_value((unsigned char)quad[k], '/');
                if (v[k] < 0) {
                    return -1;
                }
            }
            if (pad > 2 || (pad > 0 && (!is_last_line || q + 4 != line_len))) {
                return -1;
            }
            if ((pad == 1 && (v[2] & 0x3) != 0) || (pad == 2 && (v[1] & 0xf) != 0)) {
                return -1; /* non-zero pad bits */
            }
            decoded += 3 - pad;
            is_done = pad > 0;
        }
        pos += line_len + 2;
    }
    return decoded;
}

/* The MIME structure of a multipart message (the BDAT form). */
static void
check_mime(const struct buf *msg, size_t head_len)
{
    char value[512];
    CHECK(header_value(msg->bytes, head_len, "Content-Type", value, sizeof(value)));
    CHECK(strncmp(value, "multipart/mixed;", 16) == 0);
    const char *b = strstr(value, "boundary=\"");
    CHECK(b != NULL);
    if (b == NULL) {
        return;
    }
    b += 10;
    const char *b_end = strchr(b, '"');
    CHECK(b_end != NULL && b_end > b && b_end - b <= 70); /* RFC 2046: 1..70 */
    if (b_end == NULL) {
        return;
    }
    char delimiter[100];
    char close[100];
    (void)snprintf(delimiter, sizeof(delimiter), "\r\n--%.*s\r\n", (int)(b_end - b), b);
    (void)snprintf(close, sizeof(close), "\r\n--%.*s--\r\n", (int)(b_end - b), b);
    char boundary[80];
    (void)snprintf(boundary, sizeof(boundary), "%.*s", (int)(b_end - b), b);

    /* The header block's blank line starts the body: the CRLF before a
     * delimiter belongs to the delimiter, so search from the blank line's
     * first CRLF. */
    const char *body = msg->bytes + head_len;
    const char *header_end = find(msg->bytes, msg->len, "\r\n\r\n");
    CHECK(header_end != NULL);
    if (header_end == NULL) {
        return;
    }
    const char *scan = header_end + 2;
    size_t scan_len = msg->len - (size_t)(scan - msg->bytes);
    CHECK(count(scan, scan_len, boundary) == 3); /* two delimiters and the close */
    CHECK(count(scan, scan_len, delimiter) == 2);
    CHECK(count(scan, scan_len, close) == 1);
    /* The close delimiter ends the message. */
    CHECK(msg->len >= strlen(close) &&
          memcmp(msg->bytes + msg->len - strlen(close), close, strlen(close)) == 0);

    const char *part1 = find(scan, scan_len, delimiter);
    const char *part2 = part1 != NULL
                            ? find(part1 + 1, (size_t)(msg->bytes + msg->len - part1 - 1),
                                   delimiter)
                            : NULL;
    CHECK(part1 != NULL && part2 != NULL);
    if (part1 == NULL || part2 == NULL) {
        return;
    }
    CHECK(part1 >= body - 2); /* after the header block */
    part1 += strlen(delimiter);
    part2 += strlen(delimiter);
    size_t part1_len = (size_t)(part2 - part1);
    CHECK(header_value(part1, part1_len, "Content-Type", value, sizeof(value)));
    CHECK(strncmp(value, "text/plain", 10) == 0);

    const char *close_at = msg->bytes + msg->len - strlen(close);
    size_t part2_len = (size_t)(close_at - part2) + 2; /* the last line's CRLF */
    CHECK(header_value(part2, part2_len, "Content-Transfer-Encoding", value, sizeof(value)));
    CHECK(strcmp(value, "base64") == 0);
    CHECK(header_value(part2, part2_len, "Content-Disposition", value, sizeof(value)));
    CHECK(strncmp(value, "attachment", 10) == 0);
    const char *blank = find(part2, part2_len, "\r\n\r\n");
    CHECK(blank != NULL);
    if (blank == NULL) {
        return;
    }
    const char *b64 = blank + 4;
    size_t b64_len = (size_t)(part2 + part2_len - b64);
    long decoded = base64_decode_strict(b64, b64_len);
    CHECK(decoded > 0);
    /* The attachment is most of the message. */
    CHECK(decoded > 0 && (size_t)decoded * 4 / 3 + 2048 + head_len * 2 >= msg->len / 2);
}

/* Every property of one message, built with args. */
static void
check_message(const struct bench_message *message, size_t index,
              const struct bench_message_head_args *args, bool has_short_addresses)
{
    const struct bench_message_body *body = bench_message_class(message, index);
    struct wire w = wire_build(message, index, args);

    /* Exact size, both ways of counting it. */
    CHECK(w.bdat.len == body->size_bytes);
    CHECK(w.head_len <= bench_message_head_bytes_max(message));
    CHECK(body->is_mime == (body->size_bytes >= BENCH_MESSAGE_MIME_BYTES));

    size_t longest = check_lines(w.bdat.bytes, w.bdat.len);
    if (has_short_addresses) {
        CHECK(longest <= SHORT_LINE_CHARS_MAX);
    }
    /* The head ends at a line start and never starts a line with a dot,
     * so stuffing the tail alone is stuffing the message. */
    CHECK(w.bdat.bytes[w.head_len - 1] == '\n');
    CHECK(w.bdat.bytes[0] != '.');
    CHECK(find(w.bdat.bytes, w.head_len, "\n.") == NULL);

    /* BDAT form: no DATA terminator at the end. */
    CHECK(!has_prefix(w.bdat.bytes + w.bdat.len - 5, 5, "\r\n.\r\n"));

    /* DATA form: ends with CRLF.CRLF, has no earlier end, and unstuffs to
     * the BDAT form exactly. */
    check_lines(w.data.bytes, w.data.len);
    CHECK(w.data.len >= w.bdat.len + 3);
    CHECK(has_prefix(w.data.bytes + w.data.len - 5, 5, "\r\n.\r\n"));
    const char *first_end = find(w.data.bytes, w.data.len, "\r\n.\r\n");
    CHECK(first_end == w.data.bytes + w.data.len - 5);
    struct buf unstuffed;
    CHECK(unstuff(&w.data, &unstuffed));
    CHECK(unstuffed.len == w.bdat.len);
    CHECK(unstuffed.len == w.bdat.len && memcmp(unstuffed.bytes, w.bdat.bytes, w.bdat.len) == 0);
    /* Every line of the DATA form that starts with a dot is stuffed: it
     * has a second one, or is the terminator. */
    size_t stuffed = 0;
    for (const char *p = w.data.bytes; p != NULL && p < w.data.bytes + w.data.len;) {
        if (*p == '.') {
            bool is_terminator = p == w.data.bytes + w.data.len - 3;
            CHECK(is_terminator || p[1] == '.');
            stuffed += !is_terminator;
        }
        const char *lf = memchr(p, '\n', (size_t)(w.data.bytes + w.data.len - p));
        p = lf != NULL ? lf + 1 : NULL;
    }
    CHECK(w.data.len == w.bdat.len + stuffed + 3);
    free(unstuffed.bytes);

    /* Headers. The To: header of 1000 long recipients is long. */
    static char value[1024 * 1024];
    CHECK(header_value(w.bdat.bytes, w.head_len, "From", value, sizeof(value)));
    CHECK(strstr(value, "<" FROM ">") != NULL);
    CHECK(header_value(w.bdat.bytes, w.head_len, "To", value, sizeof(value)));
    for (uint32_t i = 0; i < args->rcpt_count; i++) {
        CHECK(strstr(value, args->rcpts[i]) != NULL);
    }
    CHECK(header_value(w.bdat.bytes, w.head_len, "Date", value, sizeof(value)));
    CHECK(strcmp(value, args->date) == 0);
    CHECK(header_value(w.bdat.bytes, w.head_len, "Message-ID", value, sizeof(value)));
    CHECK(value[0] == '<' && value[strlen(value) - 1] == '>');
    CHECK(strstr(value, "@example.test>") != NULL);
    CHECK(header_value(w.bdat.bytes, w.head_len, "Subject", value, sizeof(value)));
    CHECK(strstr(value, "toaster-bench") != NULL);
    CHECK(header_value(w.bdat.bytes, w.head_len, "MIME-Version", value, sizeof(value)));
    CHECK(strcmp(value, "1.0") == 0);
    CHECK(header_value(w.bdat.bytes, w.head_len, "Content-Type", value, sizeof(value)));
    if (body->is_mime) {
        check_mime(&w.bdat, w.head_len);
    } else {
        CHECK(strncmp(value, "text/plain", 10) == 0);
        CHECK(find(w.bdat.bytes, w.bdat.len, "boundary") == NULL);
    }
    wire_free(&w);
}

static struct bench_message *
create(const size_t *sizes, size_t size_count, size_t rcpt_bytes_max, uint32_t rcpts,
       int *rc_out, char *err, size_t err_bytes)
{
    struct bench_message_class_spec classes[BENCH_MESSAGE_CLASSES_MAX];
    for (size_t i = 0; i < size_count; i++) {
        classes[i].size_bytes = sizes[i];
        classes[i].weight = 1;
    }
    struct bench_message_config config = {
        .from = FROM,
        .classes = classes,
        .class_count = size_count,
        .rcpt_bytes_max = rcpt_bytes_max,
        .rcpts_per_message = rcpts,
    };
    struct bench_message *message = NULL;
    err[0] = '\0';
    *rc_out = bench_message_create(&config, &message, err, err_bytes);
    return message;
}

/* The smallest size these headers allow, from the refusal of size 1. */
static size_t
smallest_size(size_t rcpt_bytes_max, uint32_t rcpts, size_t probe)
{
    char err[256];
    int rc;
    size_t sizes[1] = {probe};
    struct bench_message *message = create(sizes, 1, rcpt_bytes_max, rcpts, &rc, err,
                                           sizeof(err));
    CHECK(rc == -EINVAL);
    CHECK(message == NULL);
    CHECK(strstr(err, "too small") != NULL);
    const char *least = strstr(err, "use at least ");
    CHECK(least != NULL);
    return least != NULL ? (size_t)strtoull(least + 13, NULL, 10) : 0;
}

static void
check_sizes(size_t first, size_t last, size_t step, uint32_t rcpts)
{
    /* Recipients shorter than the longest the configuration allows, so
     * the padding has work to do; and numbers much smaller than the widest. */
    static const char *const short_rcpts[] = {"user1@example.test", "user22@example.test",
                                              "user3@example.test"};
    const char *rcpt_ptrs[3] = {short_rcpts[0], short_rcpts[1], short_rcpts[2]};
    char date[BENCH_MESSAGE_DATE_BYTES];
    bench_message_date(1136214245, date);

    for (size_t size = first; size <= last; size += step) {
        char err[256];
        int rc;
        size_t sizes[1] = {size};
        struct bench_message *message = create(sizes, 1, 20, rcpts, &rc, err, sizeof(err));
        CHECK(rc == 0);
        if (rc != 0) {
            (void)fprintf(stderr, "  size %zu: %s\n", size, err);
            continue;
        }
        struct bench_message_head_args small = {
            .run_id = 1, .thread_index = 0, .sequence = size % 7, .date = date,
            .rcpts = rcpt_ptrs, .rcpt_count = rcpts,
        };
        check_message(message, 0, &small, true);
        bench_message_destroy(&message);
        CHECK(message == NULL);
    }
}

static void
test_sizes(void)
{
    /* Every size from the smallest plain message up a few hundred bytes:
     * each padding and line-length remainder. */
    size_t least = smallest_size(20, 1, 1);
    CHECK(least > 200 && least < 1000);
    char err[256];
    int rc;
    size_t below[1] = {least - 1};
    struct bench_message *message = create(below, 1, 20, 1, &rc, err, sizeof(err));
    CHECK(rc == -EINVAL && message == NULL);
    check_sizes(least, least + 400, 1, 1);
    size_t least3 = smallest_size(20, 3, 1);
    CHECK(least3 > least);
    check_sizes(least3, least3 + 100, 1, 3);

    /* Around the MIME threshold, and the base64 line and quad remainders. */
    check_sizes(BENCH_MESSAGE_MIME_BYTES - 8, BENCH_MESSAGE_MIME_BYTES + 400, 1, 1);
    check_sizes(BENCH_MESSAGE_MIME_BYTES, BENCH_MESSAGE_MIME_BYTES + 240, 1, 3);
    /* Spread out, then the usual ones. */
    check_sizes(2000, 300000, 9973, 1);
    check_sizes(4096, 4096, 1, 1);
    check_sizes(20 * 1024, 20 * 1024, 1, 3);
    check_sizes(1024 * 1024, 1024 * 1024, 1, 1);
    check_sizes(1024 * 1024 + 1, 1024 * 1024 + 1, 1, 2);
}

/* Heads with the widest and the narrowest fields give the same length, so
 * the size holds for every message of a run. */
static void
test_head_constant(void)
{
    char err[256];
    int rc;
    size_t sizes[3] = {3000, 20 * 1024, 100 * 1024};
    struct bench_message *message = create(sizes, 3, 60, 5, &rc, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        return;
    }
    CHECK(bench_message_class_count(message) == 3);
    char longest[61];
    memset(longest, 'x', 60);
    memcpy(longest + 60 - 13, "@example.test", 14);
    const char *wide[5] = {longest, longest, longest, longest, longest};
    const char *narrow[5] = {"a@example.test", "b@example.test", "c@example.test",
                             "d@example.test", "e@example.test"};
    char date[BENCH_MESSAGE_DATE_BYTES];
    bench_message_date(0, date);

    for (size_t i = 0; i < 3; i++) {
        struct bench_message_head_args widest = {
            .run_id = UINT64_MAX, .thread_index = UINT32_MAX, .sequence = UINT64_MAX,
            .date = date, .rcpts = wide, .rcpt_count = 5,
        };
        struct bench_message_head_args narrowest = {
            .run_id = 0, .thread_index = 0, .sequence = 0, .date = date,
            .rcpts = narrow, .rcpt_count = 5,
        };
        struct wire a = wire_build(message, i, &widest);
        struct wire b = wire_build(message, i, &narrowest);
        CHECK(a.head_len == b.head_len);
        CHECK(a.bdat.len == sizes[i]);
        CHECK(b.bdat.len == sizes[i]);
        wire_free(&a);
        wire_free(&b);
        check_message(message, i, &widest, true);
        check_message(message, i, &narrowest, true);
    }
    /* Message-IDs differ by sequence and thread. */
    struct bench_message_head_args args = {
        .run_id = 7, .thread_index = 1, .sequence = 1, .date = date,
        .rcpts = narrow, .rcpt_count = 5,
    };
    struct wire m1 = wire_build(message, 0, &args);
    args.sequence = 2;
    struct wire m2 = wire_build(message, 0, &args);
    args.thread_index = 2;
    args.sequence = 1;
    struct wire m3 = wire_build(message, 0, &args);
    char id1[128];
    char id2[128];
    char id3[128];
    CHECK(header_value(m1.bdat.bytes, m1.head_len, "Message-ID", id1, sizeof(id1)));
    CHECK(header_value(m2.bdat.bytes, m2.head_len, "Message-ID", id2, sizeof(id2)));
    CHECK(header_value(m3.bdat.bytes, m3.head_len, "Message-ID", id3, sizeof(id3)));
    CHECK(strcmp(id1, id2) != 0);
    CHECK(strcmp(id1, id3) != 0);
    CHECK(strcmp(id2, id3) != 0);
    wire_free(&m1);
    wire_free(&m2);
    wire_free(&m3);
    bench_message_destroy(&message);
}

/* The largest header block: 1000 recipients of 255 characters. Lines stay
 * under the RFC 5322 limit though no longer under 78. */
static void
test_many_long_recipients(void)
{
    /* A plain size is refused; the size the refusal suggests is big
     * enough to be MIME, so it must allow for the MIME tail. */
    size_t least = smallest_size(255, 1000, 4096);
    CHECK(least > 1000 * 256);
    char err[256];
    int rc;
    size_t below[1] = {least - 1};
    struct bench_message *too_small = create(below, 1, 255, 1000, &rc, err, sizeof(err));
    CHECK(rc == -EINVAL && too_small == NULL);
    size_t sizes[2] = {least, 1024 * 1024};
    struct bench_message *message = create(sizes, 2, 255, 1000, &rc, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        (void)fprintf(stderr, "  %s\n", err);
        return;
    }
    char address[256];
    memset(address, 'r', 255);
    memcpy(address + 255 - 13, "@example.test", 14);
    const char **rcpts = calloc(1000, sizeof(*rcpts));
    if (rcpts == NULL) {
        abort();
    }
    for (int i = 0; i < 1000; i++) {
        rcpts[i] = i % 2 ? address : "short@example.test";
    }
    char date[BENCH_MESSAGE_DATE_BYTES];
    bench_message_date(1700000000, date);
    struct bench_message_head_args args = {
        .run_id = 3, .thread_index = 2, .sequence = 1, .date = date,
        .rcpts = rcpts, .rcpt_count = 1000,
    };
    check_message(message, 0, &args, false);
    check_message(message, 1, &args, false);
    free((void *)rcpts);
    bench_message_destroy(&message);
}

/* The tails carry what dot-stuffing is for: a line ". ", a lone "." and a
 * line starting "..", in plain bodies and in the MIME text part. */
static void
test_dot_lines(void)
{
    size_t sizes[2] = {4096, 20 * 1024};
    char err[256];
    int rc;
    struct bench_message *message = create(sizes, 2, 20, 1, &rc, err, sizeof(err));
    CHECK(rc == 0);
    if (rc != 0) {
        return;
    }
    for (size_t i = 0; i < 2; i++) {
        const struct bench_message_body *body = bench_message_class(message, i);
        CHECK(find(body->tail, body->tail_bytes, "\r\n. ") != NULL);
        CHECK(find(body->tail, body->tail_bytes, "\r\n.\r\n") != NULL);
        CHECK(find(body->tail, body->tail_bytes, "\r\n..") != NULL);
        CHECK(find(body->tail_data, body->tail_data_bytes, "\r\n.. ") != NULL);
        CHECK(find(body->tail_data, body->tail_data_bytes, "\r\n..\r\n") != NULL);
        CHECK(find(body->tail_data, body->tail_data_bytes, "\r\n...") != NULL);
        CHECK(body->tail_data_bytes == body->tail_bytes + 3 + 3); /* three dots and ".\r\n" */
    }
    bench_message_destroy(&message);
    bench_message_destroy(&message); /* NULL: a no-op */
}

static void
test_pick(void)
{
    struct bench_message_class_spec classes[3] = {{4096, 50}, {20 * 1024, 50}, {8192, 0}};
    struct bench_message_config config = {
        .from = FROM, .classes = classes, .class_count = 3, .rcpt_bytes_max = 20,
        .rcpts_per_message = 1,
    };
    struct bench_message *message = NULL;
    char err[256];
    CHECK(bench_message_create(&config, &message, err, sizeof(err)) == 0);
    if (message == NULL) {
        return;
    }
    size_t picked[3] = {0, 0, 0};
    for (uint64_t r = 0; r < 1000; r++) {
        size_t i = bench_message_pick(message, r * 0x9e3779b97f4a7c15ULL + r);
        CHECK(i < 3);
        if (i < 3) {
            picked[i]++;
        }
    }
    CHECK(picked[2] == 0); /* weight 0: never */
    CHECK(picked[0] + picked[1] == 1000);
    /* Uniform input, equal weights: exactly half of each hundred. */
    size_t first = 0;
    for (uint64_t r = 0; r < 100; r++) {
        first += bench_message_pick(message, r) == 0;
    }
    CHECK(first == 50);
    bench_message_destroy(&message);

    /* One class: always it. */
    config.class_count = 1;
    CHECK(bench_message_create(&config, &message, err, sizeof(err)) == 0);
    CHECK(bench_message_pick(message, 12345) == 0);
    CHECK(bench_message_pick(message, UINT64_MAX) == 0);
    bench_message_destroy(&message);
}

static void
test_date(void)
{
    char date[BENCH_MESSAGE_DATE_BYTES];

    bench_message_date(0, date);
    CHECK_STR(date, "Thu, 01 Jan 1970 00:00:00 +0000");
    bench_message_date(1136214245, date);
    CHECK_STR(date, "Mon, 02 Jan 2006 15:04:05 +0000");
    bench_message_date(-1, date);
    CHECK_STR(date, "Wed, 31 Dec 1969 23:59:59 +0000");
    bench_message_date(253402300799LL, date);
    CHECK_STR(date, "Fri, 31 Dec 9999 23:59:59 +0000");
    /* Past year 9999 the field would grow: any valid date instead. */
    bench_message_date(253402300800LL, date);
    CHECK(strlen(date) == BENCH_MESSAGE_DATE_BYTES - 1);
}

static void
test_address(void)
{
    char out[32];

    CHECK(bench_message_address_format("user%d@example.test", 42, out, sizeof(out)) == 19);
    CHECK_STR(out, "user42@example.test");
    CHECK(bench_message_address_format("a%%b%d@x", 7, out, sizeof(out)) == 6);
    CHECK_STR(out, "a%b7@x");
    CHECK(bench_message_address_format("fixed@x", 7, out, sizeof(out)) == 7);
    CHECK_STR(out, "fixed@x");
    CHECK(bench_message_address_format("u%d@x", 4294967295u, out, sizeof(out)) == 13);
    CHECK_STR(out, "u4294967295@x");
    /* Room for the NUL, exactly, and one byte less. */
    CHECK(bench_message_address_format("user%d@x", 123, out, 10) == 9);
    CHECK(bench_message_address_format("user%d@x", 123, out, 9) == -ENAMETOOLONG);
    CHECK(bench_message_address_format("user%d@x", 123, out, 1) == -ENAMETOOLONG);

    CHECK(bench_message_address_ok("user%d@example.test", true));
    CHECK(!bench_message_address_ok("user%d%d@example.test", true));
    CHECK(bench_message_address_ok("user%d%d@example.test", false)); /* literal in --from */
    CHECK(!bench_message_address_ok("user", false));
}

int
main(void)
{
    test_sizes();
    test_head_constant();
    test_many_long_recipients();
    test_dot_lines();
    test_pick();
    test_date();
    test_address();
    UNIT_DONE();
}
