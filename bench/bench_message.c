/*
 * bench/bench_message.c - builds the messages toaster-bench sends.
 *
 * Owns the per-class tails (allocated once in bench_message_create(), then
 * read-only and shared by all threads) and writes per-message heads into
 * buffers the caller owns. Does no I/O. Sizes are bounded by
 * BENCH_MESSAGE_BYTES_MAX per class and BENCH_MESSAGE_CLASSES_MAX classes.
 *
 * Exact sizes: a class's head always has the same length, H_max + PAD_MIN,
 * where H_max is the longest header block the configuration allows
 * (measured by writing one with the longest address and the widest
 * numbers). A message whose headers are shorter gets longer padding lines
 * right after the blank line (the first body lines, or the MIME preamble),
 * so head + tail is the requested size to the byte.
 */
#include "bench/bench_message.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_rng.h"
#include "core/assertions.h"

/* The smallest padding: one empty line. Padding can be any length from
 * here up, because lines may be 0..76 characters long. */
#define PAD_BYTES_MIN 2

/* Longest text line we write, CRLF excluded (the limit is 78). */
#define TEXT_LINE_CHARS_MAX 76

/* base64 characters per line (RFC 2045). */
#define BASE64_LINE_CHARS 76

/* Text part of a MIME message, before the attachment. */
#define MIME_TEXT_BYTES 1024

/* Smallest MIME tail: part headers, two text parts' worth and a bit. */
#define MIME_TAIL_BYTES_MIN 4096

/* Smallest plain tail: room for a few lines. */
#define PLAIN_TAIL_BYTES_MIN 64

/* Rounds of size_least(): the size's digits and the switch to MIME each
 * move the answer a few times at most. */
#define SIZE_LEAST_ROUNDS_MAX 32

/* Below this a plain body gets no dot lines (they would not fit). */
#define DOT_LINES_BYTES_MIN 200

#define MIME_BOUNDARY "=_toaster-bench_boundary_0"

static const char *const words[] = {
    "mail",    "server",   "toaster", "queue",  "spool",   "message", "delivery", "latency",
    "the",     "of",       "and",     "to",     "a",       "in",      "is",       "that",
    "bench",   "recipient", "header", "body",   "line",    "bytes",   "io_uring", "reactor",
    "durable", "fsync",    "maildir", "rename", "loopback", "sender", "envelope", "throughput",
    "steady",  "load",     "test",    "with",   "for",     "on",      "every",    "percentile",
};

struct bench_message {
    size_t                    class_count;
    struct bench_message_body classes[BENCH_MESSAGE_CLASSES_MAX];
    size_t                    head_bytes[BENCH_MESSAGE_CLASSES_MAX]; /* H_max + PAD_BYTES_MIN */
    uint64_t                  weight_total;
    const char               *from;
    const char               *from_domain;
    size_t                    head_bytes_max;
};

static size_t headers_write(const struct bench_message *message,
                            const struct bench_message_body *body,
                            const struct bench_message_head_args *args, char *buf,
                            size_t buf_bytes);
static void text_fill(char *out, size_t bytes, uint64_t seed, bool with_dot_lines);
static int tail_build(struct bench_message_body *body, size_t tail_bytes, uint64_t seed);
static size_t base64_bytes(size_t raw_bytes);
static size_t size_least(const struct bench_message *message,
                         const struct bench_message_head_args *widest, char *scratch,
                         size_t scratch_bytes);

int
bench_message_create(const struct bench_message_config *config,
                     struct bench_message **message_out, char *err, size_t err_bytes)
{
    ASSERT(config != NULL);
    ASSERT(message_out != NULL);
    ASSERT(config->class_count >= 1);
    ASSERT(config->class_count <= BENCH_MESSAGE_CLASSES_MAX);
    ASSERT(config->rcpts_per_message >= 1);
    ASSERT(config->rcpt_bytes_max >= 1);
    ASSERT(config->rcpt_bytes_max < BENCH_MESSAGE_ADDRESS_BYTES_MAX);

    struct bench_message *message = calloc(1, sizeof(*message));
    if (message == NULL) {
        return -ENOMEM;
    }
    message->from = config->from;
    const char *at = strrchr(config->from, '@');
    message->from_domain = at != NULL ? at + 1 : "toaster-bench.invalid";
    message->class_count = config->class_count;

    /* The longest header block: every recipient as long as the longest
     * address, every number at its widest. */
    uint32_t rcpt_count = config->rcpts_per_message;
    char longest[BENCH_MESSAGE_ADDRESS_BYTES_MAX];
    memset(longest, 'x', config->rcpt_bytes_max);
    longest[config->rcpt_bytes_max] = '\0';
    const char **rcpts = calloc(rcpt_count, sizeof(*rcpts));
    if (rcpts == NULL) {
        free(message);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < rcpt_count; i++) {
        rcpts[i] = longest;
    }
    char date[BENCH_MESSAGE_DATE_BYTES];
    bench_message_date(0, date);
    struct bench_message_head_args widest = {
        .run_id = UINT64_MAX,
        .thread_index = UINT32_MAX,
        .sequence = UINT64_MAX,
        .date = date,
        .rcpts = rcpts,
        .rcpt_count = rcpt_count,
    };
    size_t scratch_bytes = 4096 + (size_t)rcpt_count * (config->rcpt_bytes_max + 8);
    char *scratch = malloc(scratch_bytes);
    if (scratch == NULL) {
        free(rcpts);
        free(message);
        return -ENOMEM;
    }

    int rc = 0;
    for (size_t i = 0; i < config->class_count; i++) {
        struct bench_message_body *body = &message->classes[i];
        body->size_bytes = config->classes[i].size_bytes;
        body->weight = config->classes[i].weight;
        body->is_mime = body->size_bytes >= BENCH_MESSAGE_MIME_BYTES;
        message->weight_total += body->weight;

        size_t header_bytes_max = headers_write(message, body, &widest, scratch, scratch_bytes);
        size_t head_bytes = header_bytes_max + PAD_BYTES_MIN;
        /* A plain body needs room for a few lines, a MIME one for its
         * part headers and text part. */
        size_t tail_bytes_min = body->is_mime ? MIME_TAIL_BYTES_MIN : PLAIN_TAIL_BYTES_MIN;
        if (body->size_bytes < head_bytes + tail_bytes_min) {
            (void)snprintf(err, err_bytes,
                           "message size %zu is too small: these headers take up to %zu bytes, "
                           "use at least %zu",
                           body->size_bytes, header_bytes_max,
                           size_least(message, &widest, scratch, scratch_bytes));
            rc = -EINVAL;
            break;
        }
        message->head_bytes[i] = head_bytes;
        if (head_bytes > message->head_bytes_max) {
            message->head_bytes_max = head_bytes;
        }
        rc = tail_build(body, body->size_bytes - head_bytes, 0x9e3779b97f4a7c15ULL * (i + 1));
        if (rc < 0) {
            (void)snprintf(err, err_bytes, "out of memory building a %zu-byte message",
                           body->size_bytes);
            break;
        }
    }
    free(scratch);
    free(rcpts);
    if (rc < 0) {
        bench_message_destroy(&message);
        return rc;
    }
    *message_out = message;
    return 0;
}

void
bench_message_destroy(struct bench_message **message)
{
    ASSERT(message != NULL);
    if (*message == NULL) {
        return;
    }
    for (size_t i = 0; i < (*message)->class_count; i++) {
        free((void *)(*message)->classes[i].tail);
        free((void *)(*message)->classes[i].tail_data);
    }
    free(*message);
    *message = NULL;
}

size_t
bench_message_class_count(const struct bench_message *message)
{
    return message->class_count;
}

const struct bench_message_body *
bench_message_class(const struct bench_message *message, size_t index)
{
    ASSERT(index < message->class_count);
    return &message->classes[index];
}

size_t
bench_message_pick(const struct bench_message *message, uint64_t random)
{
    if (message->class_count == 1 || message->weight_total == 0) {
        return 0;
    }
    uint64_t point = random % message->weight_total;
    for (size_t i = 0; i < message->class_count; i++) {
        if (point < message->classes[i].weight) {
            return i;
        }
        point -= message->classes[i].weight;
    }
    ASSERT(!"weights add up to weight_total");
    return 0;
}

size_t
bench_message_head_bytes_max(const struct bench_message *message)
{
    return message->head_bytes_max;
}

size_t
bench_message_head(const struct bench_message *message, size_t index,
                   const struct bench_message_head_args *args, char *buf, size_t buf_bytes)
{
    ASSERT(index < message->class_count);
    const struct bench_message_body *body = &message->classes[index];
    size_t head_bytes = message->head_bytes[index];

    ASSERT(buf_bytes >= head_bytes);
    size_t header_bytes = headers_write(message, body, args, buf, buf_bytes);
    /* The configuration bounds every field, so the widest header block
     * measured at start-up is an upper bound. */
    ASSERT(header_bytes + PAD_BYTES_MIN <= head_bytes);
    text_fill(buf + header_bytes, head_bytes - header_bytes, args->sequence, false);
    return head_bytes;
}

void
bench_message_date(time_t when, char out[BENCH_MESSAGE_DATE_BYTES])
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;

    if (gmtime_r(&when, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0) {
        /* Only a broken clock gets here; any valid date will do. */
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = 70;
        tm.tm_mday = 1;
        tm.tm_wday = 4;
    }
    int n = snprintf(out, BENCH_MESSAGE_DATE_BYTES, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                     days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                     tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    ASSERT(n == BENCH_MESSAGE_DATE_BYTES - 1);
}

bool
bench_message_address_ok(const char *address, bool is_pattern)
{
    size_t at_count = 0;
    size_t user_count = 0;
    size_t length = strlen(address);

    if (length == 0 || length >= BENCH_MESSAGE_ADDRESS_BYTES_MAX / 2) {
        return false;
    }
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)address[i];
        if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == '\\') {
            return false;
        }
        if (c == '@') {
            at_count++;
        }
        if (c == '%') {
            if (!is_pattern) {
                continue; /* a literal '%' in --from is legal, if odd */
            }
            if (address[i + 1] == 'd') {
                user_count++;
                i++;
            } else if (address[i + 1] == '%') {
                i++;
            } else {
                return false;
            }
        }
    }
    if (at_count != 1 || address[0] == '@' || address[length - 1] == '@') {
        return false;
    }
    return user_count <= 1;
}

int
bench_message_address_format(const char *pattern, uint32_t user, char *out, size_t out_bytes)
{
    size_t n = 0;

    ASSERT(out_bytes > 0);
    for (size_t i = 0; pattern[i] != '\0'; i++) {
        char number[16];
        const char *piece = &pattern[i];
        size_t piece_bytes = 1;
        if (pattern[i] == '%' && pattern[i + 1] == 'd') {
            int w = snprintf(number, sizeof(number), "%" PRIu32, user);
            ASSERT(w > 0);
            piece = number;
            piece_bytes = (size_t)w;
            i++;
        } else if (pattern[i] == '%' && pattern[i + 1] == '%') {
            i++;
        }
        if (n + piece_bytes >= out_bytes) {
            return -ENAMETOOLONG;
        }
        memcpy(out + n, piece, piece_bytes);
        n += piece_bytes;
    }
    out[n] = '\0';
    return (int)n;
}

/* The header block and the blank line that ends it. */
static size_t
headers_write(const struct bench_message *message, const struct bench_message_body *body,
              const struct bench_message_head_args *args, char *buf, size_t buf_bytes)
{
    size_t n = 0;
    int w;

#define HEADERS_PRINTF(...)                                                                  \
    do {                                                                                     \
        w = snprintf(buf + n, buf_bytes - n, __VA_ARGS__);                                   \
        ASSERT(w >= 0);                                                                      \
        ASSERT((size_t)w < buf_bytes - n);                                                   \
        n += (size_t)w;                                                                      \
    } while (0)

    ASSERT(args->rcpt_count >= 1);
    HEADERS_PRINTF("From: toaster-bench <%s>\r\n", message->from);
    /* One recipient per line keeps lines short and the length a sum of the
     * address lengths, which is what makes H_max an upper bound. */
    HEADERS_PRINTF("To: %s", args->rcpts[0]);
    for (uint32_t i = 1; i < args->rcpt_count; i++) {
        HEADERS_PRINTF(",\r\n %s", args->rcpts[i]);
    }
    HEADERS_PRINTF("\r\n");
    HEADERS_PRINTF("Subject: toaster-bench %" PRIu32 ".%" PRIu64 ", %zu bytes\r\n",
                   args->thread_index, args->sequence, body->size_bytes);
    HEADERS_PRINTF("Date: %s\r\n", args->date);
    HEADERS_PRINTF("Message-ID: <%016" PRIx64 ".%" PRIu32 ".%" PRIu64 "@%s>\r\n", args->run_id,
                   args->thread_index, args->sequence, message->from_domain);
    HEADERS_PRINTF("MIME-Version: 1.0\r\n");
    if (body->is_mime) {
        HEADERS_PRINTF("Content-Type: multipart/mixed;\r\n boundary=\"" MIME_BOUNDARY "\"\r\n");
    } else {
        HEADERS_PRINTF("Content-Type: text/plain; charset=us-ascii\r\n"
                       "Content-Transfer-Encoding: 7bit\r\n");
    }
    HEADERS_PRINTF("\r\n");
#undef HEADERS_PRINTF
    return n;
}

/* Text made of words, exactly `bytes` long (bytes >= 2), in lines of at
 * most TEXT_LINE_CHARS_MAX characters plus CRLF. With dot lines, the third
 * line starts with ". ", the fourth is a lone "." and the fifth starts with
 * "..": what dot-stuffing exists for. */
static void
text_fill(char *out, size_t bytes, uint64_t seed, bool with_dot_lines)
{
    uint64_t rng = seed | 1;
    size_t pos = 0;
    uint32_t line_index = 0;

    ASSERT(bytes >= 2);
    with_dot_lines = with_dot_lines && bytes >= DOT_LINES_BYTES_MIN;
    while (pos < bytes) {
        size_t remaining = bytes - pos;
        size_t line_bytes = 2 + 40 + (size_t)(bench_rng_next(&rng) % (TEXT_LINE_CHARS_MAX - 40 + 1));
        const char *prefix = "";
        if (with_dot_lines && line_index == 3) {
            line_bytes = 3;
            prefix = ".";
        } else if (with_dot_lines && line_index == 2) {
            prefix = ". ";
        } else if (with_dot_lines && line_index == 4) {
            prefix = "..";
        }
        if (line_bytes > remaining) {
            line_bytes = remaining;
        }
        /* Never leave a single byte: no line is shorter than CRLF. */
        if (remaining - line_bytes == 1) {
            line_bytes--;
        }
        /* The last line never starts with a dot: cut to "." it would make
         * the BDAT form end the way DATA's terminator does. */
        if (line_bytes == remaining) {
            prefix = "";
        }
        ASSERT(line_bytes >= 2);
        size_t chars = line_bytes - 2;
        size_t prefix_bytes = strlen(prefix);
        if (prefix_bytes > chars) {
            prefix_bytes = chars;
        }
        memcpy(out + pos, prefix, prefix_bytes);
        size_t k = prefix_bytes;
        bool needs_space = prefix_bytes > 0 && prefix[prefix_bytes - 1] != ' ';
        while (k < chars) {
            if (needs_space) {
                out[pos + k++] = ' ';
                if (k == chars) {
                    break;
                }
            }
            const char *word = words[bench_rng_next(&rng) % (sizeof(words) / sizeof(words[0]))];
            size_t word_bytes = strlen(word);
            if (word_bytes > chars - k) {
                word_bytes = chars - k;
            }
            memcpy(out + pos + k, word, word_bytes);
            k += word_bytes;
            needs_space = true;
        }
        /* A trailing space is legal but invites mangling; end on a letter. */
        if (chars > 0 && out[pos + chars - 1] == ' ') {
            out[pos + chars - 1] = 'x';
        }
        out[pos + chars] = '\r';
        out[pos + chars + 1] = '\n';
        pos += line_bytes;
        line_index++;
    }
    ASSERT(pos == bytes);
}

/* Build both tails of a class: the raw tail of exactly tail_bytes, and the
 * dot-stuffed copy with the DATA terminator. */
static int
tail_build(struct bench_message_body *body, size_t tail_bytes, uint64_t seed)
{
    char *tail = malloc(tail_bytes);
    if (tail == NULL) {
        return -ENOMEM;
    }
    if (!body->is_mime) {
        text_fill(tail, tail_bytes, seed, true);
    } else {
        static const char preamble[] = "This is a multi-part message in MIME format.\r\n\r\n";
        static const char text_start[] = "--" MIME_BOUNDARY "\r\n"
                                         "Content-Type: text/plain; charset=us-ascii\r\n"
                                         "Content-Transfer-Encoding: 7bit\r\n"
                                         "\r\n";
        static const char attachment_start[] =
            "--" MIME_BOUNDARY "\r\n"
            "Content-Type: application/octet-stream; name=\"bench.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename=\"bench.bin\"\r\n"
            "\r\n";
        static const char end[] = "--" MIME_BOUNDARY "--\r\n";
        size_t fixed_bytes = (sizeof(preamble) - 1) + (sizeof(text_start) - 1) +
                             (sizeof(attachment_start) - 1) + (sizeof(end) - 1);
        ASSERT(tail_bytes >= fixed_bytes + 2 * MIME_TEXT_BYTES);

        /* Largest attachment that leaves the text part at least
         * MIME_TEXT_BYTES; the text part absorbs the rest exactly. */
        size_t room = tail_bytes - fixed_bytes - MIME_TEXT_BYTES;
        size_t raw_bytes = room / 78 * 57;
        while (raw_bytes > 0 && base64_bytes(raw_bytes) > room) {
            raw_bytes--;
        }
        while (base64_bytes(raw_bytes + 1) <= room) {
            raw_bytes++;
        }
        size_t text_bytes = tail_bytes - fixed_bytes - base64_bytes(raw_bytes);

        static const char alphabet[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *p = tail;
        memcpy(p, preamble, sizeof(preamble) - 1);
        p += sizeof(preamble) - 1;
        memcpy(p, text_start, sizeof(text_start) - 1);
        p += sizeof(text_start) - 1;
        text_fill(p, text_bytes, seed, true);
        p += text_bytes;
        memcpy(p, attachment_start, sizeof(attachment_start) - 1);
        p += sizeof(attachment_start) - 1;

        /* base64 of pseudo-random bytes: incompressible, like real
         * attachments. */
        uint64_t rng = seed ^ 0x5bd1e995u;
        size_t line_chars = 0;
        for (size_t done = 0; done < raw_bytes; done += 3) {
            uint64_t r = bench_rng_next(&rng);
            size_t take = raw_bytes - done < 3 ? raw_bytes - done : 3;
            uint32_t triple = (uint32_t)(r & 0xffffff);
            char quad[4];
            quad[0] = alphabet[(triple >> 18) & 63];
            quad[1] = alphabet[(triple >> 12) & 63];
            quad[2] = take > 1 ? alphabet[(triple >> 6) & 63] : '=';
            quad[3] = take > 2 ? alphabet[triple & 63] : '=';
            if (take == 1) {
                quad[1] = alphabet[(triple >> 12) & 48]; /* low bits zero, as decoders expect */
            } else if (take == 2) {
                quad[2] = alphabet[(triple >> 6) & 60];
            }
            memcpy(p, quad, 4);
            p += 4;
            line_chars += 4;
            if (line_chars == BASE64_LINE_CHARS) {
                *p++ = '\r';
                *p++ = '\n';
                line_chars = 0;
            }
        }
        if (line_chars > 0) {
            *p++ = '\r';
            *p++ = '\n';
        }
        memcpy(p, end, sizeof(end) - 1);
        p += sizeof(end) - 1;
        ASSERT((size_t)(p - tail) == tail_bytes);
    }

    /* The DATA copy: a dot at the start of a line gets another in front,
     * then the terminator. The tail starts at a line start (the head ends
     * with CRLF). */
    size_t dots = 0;
    for (size_t i = 0; i < tail_bytes; i++) {
        if (tail[i] == '.' && (i == 0 || tail[i - 1] == '\n')) {
            dots++;
        }
    }
    size_t data_bytes = tail_bytes + dots + 3;
    char *data = malloc(data_bytes);
    if (data == NULL) {
        free(tail);
        return -ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < tail_bytes; i++) {
        if (tail[i] == '.' && (i == 0 || tail[i - 1] == '\n')) {
            data[n++] = '.';
        }
        data[n++] = tail[i];
    }
    ASSERT(tail_bytes >= 2);
    ASSERT(tail[tail_bytes - 2] == '\r');
    ASSERT(tail[tail_bytes - 1] == '\n');
    memcpy(data + n, ".\r\n", 3);
    n += 3;
    ASSERT(n == data_bytes);

    body->tail = tail;
    body->tail_bytes = tail_bytes;
    body->tail_data = data;
    body->tail_data_bytes = data_bytes;
    return 0;
}

/* The smallest message size the configuration allows. The Subject shows
 * the size, and from BENCH_MESSAGE_MIME_BYTES up the tail must hold the MIME
 * parts, so the need grows with the size: start from nothing and raise the
 * size to what it needs until it suffices (the least such size, as the
 * need never shrinks when the size grows). */
static size_t
size_least(const struct bench_message *message, const struct bench_message_head_args *widest,
           char *scratch, size_t scratch_bytes)
{
    struct bench_message_body probe = {.size_bytes = 1};

    for (int round = 0; round < SIZE_LEAST_ROUNDS_MAX; round++) {
        probe.is_mime = probe.size_bytes >= BENCH_MESSAGE_MIME_BYTES;
        size_t need = headers_write(message, &probe, widest, scratch, scratch_bytes) +
                      PAD_BYTES_MIN + (probe.is_mime ? MIME_TAIL_BYTES_MIN : PLAIN_TAIL_BYTES_MIN);
        if (need <= probe.size_bytes) {
            break;
        }
        probe.size_bytes = need;
    }
    return probe.size_bytes;
}

/* Bytes that raw_bytes of data take as base64 lines with CRLF. */
static size_t
base64_bytes(size_t raw_bytes)
{
    size_t chars = (raw_bytes + 2) / 3 * 4; /* rounds up to whole quads */
    size_t lines = (chars + BASE64_LINE_CHARS - 1) / BASE64_LINE_CHARS; /* rounds up */
    return chars + 2 * lines;
}
