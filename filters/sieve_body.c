/*
 * filters/sieve_body.c - the text the Sieve "body" test (RFC 5173) looks
 * at: the raw body, or the MIME parts whose type matches, decoded.
 *
 * Built on the project's MIME parser (proto/imap/imap_mime: one pass over
 * the whole message, borrowed views), its transfer decoders
 * (imap_decode) and its charset converter (imap_text, glibc iconv), the
 * same code IMAP and the spam filter use, so the three agree on what a
 * part is. Owns only what one call allocates (the part table, a copy of
 * the message when header and body are not adjacent, one part's decoded
 * text) and frees it before returning. Runs on a worker: iconv_open may
 * load a gconv module.
 *
 * What each transform hands over (RFC 5173 section 5):
 *   :raw      the body as it is, one piece;
 *   :content  for each part whose type matches: a leaf part's content,
 *             transfer-decoded (base64, quoted-printable) and, for text
 *             types, converted from its charset to UTF-8 (no charset,
 *             US-ASCII, UTF-8 and charsets iconv does not know pass
 *             unchanged); a multipart's prologue and epilogue (each a
 *             piece when not empty, boundaries excluded); a
 *             message/rfc822 part's nested header block (without its
 *             empty line). The search descends into every multipart and
 *             message/rfc822 whatever its own type.
 *   :text     :content "text".
 * Limits: SIEVE_BODY_DEPTH_MAX nesting levels, SIEVE_BODY_PARTS_MAX parts,
 * SIEVE_BODY_DECODED_BYTES_MAX bytes handed over in all (:content and
 * :text); past any of them the walk returns -E2BIG.
 */
#include "filters/sieve_body.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/assertions.h"
#include "core/span.h"
#include "proto/imap/imap_decode.h"
#include "proto/imap/imap_mime.h"
#include "proto/imap/imap_rfc822.h"
#include "proto/imap/imap_text.h"

/* One more record than the bound, so that a message over it is seen. */
#define SIEVE_BODY_PART_RECORDS (SIEVE_BODY_PARTS_MAX + 1u)

static_assert(SIEVE_BODY_PART_RECORDS <= IMAP_MIME_PARTS_MAX, "the parser can hold the bound");
static_assert(SIEVE_BODY_DEPTH_MAX + 1u < IMAP_MIME_DEPTH_MAX,
              "the parser nests deeper than our bound, so over-deep parts are seen");

/* A growing byte buffer, capped at SIEVE_BODY_DECODED_BYTES_MAX. */
struct body_buf {
    char *bytes;
    size_t len;
    size_t cap;
    bool is_over; /* a write went past the cap */
};

struct body_walk {
    const char *msg;
    size_t msg_len;
    const struct imap_mime_part *parts;
    size_t part_count;
    const struct sieve_string *types;
    size_t type_count;
    bool is_text_only; /* :text */
    sieve_body_piece_fn piece;
    void *ctx;
    size_t handed_bytes; /* :content / :text bytes given to piece so far */
};

static int walk_parts(struct body_walk *walk);
static int hand(struct body_walk *walk, const char *text, size_t len);
static int hand_leaf(struct body_walk *walk, const struct imap_mime_part *part);
static int hand_multipart(struct body_walk *walk, const struct imap_mime_part *part);
static int hand_message(struct body_walk *walk, const struct imap_mime_part *part);
static bool type_matches(const struct body_walk *walk, const struct imap_mime_part *part);
static bool type_string_matches(const struct sieve_string *want, struct span type,
                                struct span subtype);
static struct span part_charset(const struct imap_mime_part *part);
static size_t header_block_len(const char *header, size_t header_len, bool *has_blank_out);
static size_t line_after(const char *s, size_t len, size_t pos);
static bool buf_reserve(struct body_buf *buf, size_t more);
static int decode_base64_lenient(const char *raw, size_t raw_len, struct body_buf *decoded);
static int buf_grow(struct body_buf *buf);
static void buf_emit(void *ctx, const char *bytes, size_t len);

int
sieve_body_walk(const char *header, size_t header_len, const char *body, size_t body_len,
                enum sieve_body_transform transform, const struct sieve_string *content_types,
                size_t type_count, sieve_body_piece_fn piece, void *ctx)
{
    ASSERT(piece != NULL);
    ASSERT(header != NULL || header_len == 0);
    ASSERT(body != NULL || body_len == 0);
    ASSERT(content_types != NULL || type_count == 0);
    ASSERT(transform == SIEVE_BODY_RAW || transform == SIEVE_BODY_TEXT ||
           transform == SIEVE_BODY_CONTENT);

    if (transform == SIEVE_BODY_RAW) {
        return piece(ctx, body_len > 0 ? body : "", body_len);
    }

    /* The parser wants one buffer: the header block followed by the body.
     * Use the caller's when they are adjacent, else copy. */
    bool has_blank = false;
    size_t block_len = header_block_len(header, header_len, &has_blank);
    char *copy = NULL;
    const char *msg = header;
    size_t msg_len;
    if (block_len > SIZE_MAX - 2 - body_len) {
        return -E2BIG;
    }
    if (has_blank && body_len > 0 && header + block_len == body) {
        msg_len = block_len + body_len;
    } else if (has_blank && body_len == 0) {
        msg_len = block_len;
    } else {
        msg_len = block_len + (has_blank ? 0 : 2) + body_len;
        copy = malloc(msg_len > 0 ? msg_len : 1);
        if (copy == NULL) {
            return -ENOMEM;
        }
        if (block_len > 0) {
            memcpy(copy, header, block_len);
        }
        if (!has_blank) {
            memcpy(copy + block_len, "\r\n", 2);
        }
        if (body_len > 0) {
            memcpy(copy + block_len + (has_blank ? 0 : 2), body, body_len);
        }
        msg = copy;
    }

    struct imap_mime_part *parts = malloc(SIEVE_BODY_PART_RECORDS * sizeof(*parts));
    if (parts == NULL) {
        free(copy);
        return -ENOMEM;
    }
    struct imap_mime_result result;
    int rc = imap_mime_parse(msg_len > 0 ? msg : "", msg_len, parts, SIEVE_BODY_PART_RECORDS,
                             &result);
    ASSERT(rc == 0); /* the parser never fails on content */
    ASSERT(result.part_count >= 1);

    struct body_walk walk = {
        .msg = msg,
        .msg_len = msg_len,
        .parts = parts,
        .part_count = result.part_count,
        .types = content_types,
        .type_count = transform == SIEVE_BODY_TEXT ? 0 : type_count,
        .is_text_only = transform == SIEVE_BODY_TEXT,
        .piece = piece,
        .ctx = ctx,
    };
    if (result.part_count > SIEVE_BODY_PARTS_MAX) {
        rc = -E2BIG;
    } else {
        rc = walk_parts(&walk);
    }
    free(parts);
    free(copy);
    return rc;
}

/* Every part in document order. The depth check comes first, over the
 * whole table, so an over-deep message fails the same way whatever
 * matched before the deep part. */
static int
walk_parts(struct body_walk *walk)
{
    for (size_t i = 0; i < walk->part_count; i++) {
        if (walk->parts[i].depth > SIEVE_BODY_DEPTH_MAX) {
            return -E2BIG;
        }
    }
    for (size_t i = 0; i < walk->part_count; i++) {
        const struct imap_mime_part *part = &walk->parts[i];
        ASSERT(part->body_offset <= walk->msg_len);
        ASSERT(part->body_size <= walk->msg_len - part->body_offset);
        if (!type_matches(walk, part)) {
            continue;
        }
        int rc;
        if ((part->flags & IMAP_MIME_IS_MULTIPART) != 0) {
            rc = hand_multipart(walk, part);
        } else if ((part->flags & IMAP_MIME_IS_MESSAGE) != 0) {
            rc = hand_message(walk, part);
        } else {
            rc = hand_leaf(walk, part);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Give one piece to the callback, within the byte bound. */
static int
hand(struct body_walk *walk, const char *text, size_t len)
{
    if (len > SIEVE_BODY_DECODED_BYTES_MAX - walk->handed_bytes) {
        return -E2BIG;
    }
    walk->handed_bytes += len;
    int rc = walk->piece(walk->ctx, len > 0 ? text : "", len);
    return rc > 0 ? 1 : rc;
}

static int
hand_leaf(struct body_walk *walk, const struct imap_mime_part *part)
{
    const char *raw = walk->msg + part->body_offset;
    size_t raw_len = part->body_size;
    bool is_base64 = span_equals_nocase(part->encoding, "base64");
    bool is_qp = span_equals_nocase(part->encoding, "quoted-printable");
    bool is_text = (part->flags & IMAP_MIME_IS_TEXT) != 0;
    struct span charset = is_text ? part_charset(part) : span_make(NULL, 0);
    bool is_plain_charset = charset.len == 0 || span_equals_nocase(charset, "utf-8") ||
                            span_equals_nocase(charset, "us-ascii");
    struct imap_text_conv conv;
    bool is_converting = !is_plain_charset && imap_text_conv_open(&conv, charset) == 0;

    if (!is_base64 && !is_qp && !is_converting) {
        return hand(walk, raw, raw_len);
    }

    /* Transfer decoding: the output is never longer than the input. */
    struct body_buf decoded = {0};
    const char *text = raw;
    size_t text_len = raw_len;
    if (is_base64 || is_qp) {
        /* Room for the whole output (never longer than the input), capped
         * at the bound: a part that decodes to more fails in buf_emit. */
        size_t room = raw_len < SIEVE_BODY_DECODED_BYTES_MAX ? raw_len
                                                              : SIEVE_BODY_DECODED_BYTES_MAX;
        if (!buf_reserve(&decoded, room)) {
            if (is_converting) {
                imap_text_conv_close(&conv);
            }
            return decoded.is_over ? -E2BIG : -ENOMEM;
        }
        if (is_base64) {
            if (imap_decode_base64_stream(raw, raw_len, buf_emit, &decoded) < 0 &&
                !decoded.is_over) {
                int b64_rc = decode_base64_lenient(raw, raw_len, &decoded);
                if (b64_rc < 0) {
                    if (is_converting) {
                        imap_text_conv_close(&conv);
                    }
                    free(decoded.bytes);
                    return b64_rc;
                }
            }
        } else {
            long n = imap_decode_qp_stream(raw, raw_len, buf_emit, &decoded);
            ASSERT(n >= 0);
        }
        if (decoded.is_over) {
            if (is_converting) {
                imap_text_conv_close(&conv);
            }
            free(decoded.bytes);
            return -E2BIG;
        }
        text = decoded.bytes;
        text_len = decoded.len;
    }
    if (!is_converting) {
        int rc = hand(walk, text, text_len);
        free(decoded.bytes);
        return rc;
    }

    /* Charset to UTF-8. Each round consumes input or, when the output has
     * no room for the next character, grows it (at most up to the byte
     * bound), so the loop ends. */
    struct body_buf utf8 = {0};
    size_t used_total = 0;
    int rc = 0;
    size_t first = text_len + text_len / 2 + 16; /* most text grows by less than half */
    if (!buf_reserve(&utf8, first < SIEVE_BODY_DECODED_BYTES_MAX ? first
                                                                 : SIEVE_BODY_DECODED_BYTES_MAX)) {
        rc = -ENOMEM;
    }
    while (rc == 0 && used_total < text_len) {
        size_t used = 0;
        size_t written = imap_text_conv_run(&conv, text + used_total, text_len - used_total, true,
                                            utf8.bytes + utf8.len, utf8.cap - utf8.len, &used);
        ASSERT(written <= utf8.cap - utf8.len);
        ASSERT(used <= text_len - used_total);
        utf8.len += written;
        used_total += used;
        if (used_total < text_len) {
            rc = buf_grow(&utf8);
        }
    }
    imap_text_conv_close(&conv);
    free(decoded.bytes);
    if (rc == 0) {
        rc = hand(walk, utf8.bytes, utf8.len);
    }
    free(utf8.bytes);
    return rc;
}

/* A multipart's prologue (before the first boundary line) and epilogue
 * (after the close-delimiter line), RFC 5173 5.2; the line break before a
 * boundary line belongs to the boundary (RFC 2046 5.1.1). A multipart
 * whose boundary never appears is all prologue. */
static int
hand_multipart(struct body_walk *walk, const struct imap_mime_part *part)
{
    const char *msg = walk->msg;
    size_t start = part->body_offset;
    size_t end = part->body_offset + part->body_size;
    if (part->first_child == IMAP_MIME_NONE) {
        return end > start ? hand(walk, msg + start, end - start) : 0;
    }
    const struct imap_mime_part *first = &walk->parts[part->first_child];
    /* The first child starts right after the first boundary line: back up
     * over that line and the break before it. */
    size_t line = first->header_offset;
    if (line > start && msg[line - 1] == '\n') {
        line--;
    }
    while (line > start && msg[line - 1] != '\n') {
        line--;
    }
    size_t prologue_end = line;
    if (prologue_end > start && msg[prologue_end - 1] == '\n') {
        prologue_end--;
        if (prologue_end > start && msg[prologue_end - 1] == '\r') {
            prologue_end--;
        }
    }
    if (prologue_end > start) {
        int rc = hand(walk, msg + start, prologue_end - start);
        if (rc != 0) {
            return rc;
        }
    }
    /* The epilogue: after the last child's end comes the line break, then
     * the close-delimiter line; only a "--boundary--" line opens one. */
    const struct imap_mime_part *last = &walk->parts[part->last_child];
    size_t pos = last->body_offset + last->body_size;
    if (pos < end && msg[pos] == '\r') {
        pos++;
    }
    if (pos < end && msg[pos] == '\n') {
        pos++;
    }
    struct span b = part->boundary;
    if (b.len == 0 || end - pos < b.len + 4 || msg[pos] != '-' || msg[pos + 1] != '-' ||
        memcmp(msg + pos + 2, b.ptr, b.len) != 0 || msg[pos + 2 + b.len] != '-' ||
        msg[pos + 3 + b.len] != '-') {
        return 0;
    }
    size_t epilogue = line_after(msg, end, pos);
    return epilogue < end ? hand(walk, msg + epilogue, end - epilogue) : 0;
}

/* A matching message/rfc822 part: the nested message's header block,
 * without the empty line that ends it (RFC 5173 5.2). */
static int
hand_message(struct body_walk *walk, const struct imap_mime_part *part)
{
    if (part->first_child == IMAP_MIME_NONE) {
        return 0; /* the parser's bounds left it unparsed */
    }
    const struct imap_mime_part *inner = &walk->parts[part->first_child];
    const char *h = walk->msg + inner->header_offset;
    size_t len = inner->header_size;
    /* Drop the empty line: "\n" or "\r\n" after the last field's end. */
    if (len > 0 && h[len - 1] == '\n') {
        size_t cut = len - 1;
        if (cut > 0 && h[cut - 1] == '\r') {
            cut--;
        }
        if (cut == 0 || h[cut - 1] == '\n') {
            len = cut;
        }
    }
    return hand(walk, h, len);
}

static bool
type_matches(const struct body_walk *walk, const struct imap_mime_part *part)
{
    struct span type;
    struct span subtype;
    if ((part->flags & IMAP_MIME_HAS_TYPE) != 0) {
        type = part->type;
        subtype = part->subtype;
    } else if ((part->flags & IMAP_MIME_IS_MESSAGE) != 0) {
        type = SPAN_LITERAL("message"); /* a digest's default */
        subtype = SPAN_LITERAL("rfc822");
    } else {
        type = SPAN_LITERAL("text"); /* RFC 2045 5.2 */
        subtype = SPAN_LITERAL("plain");
    }
    if (walk->is_text_only) {
        return span_equals_nocase(type, "text");
    }
    for (size_t i = 0; i < walk->type_count; i++) {
        if (type_string_matches(&walk->types[i], type, subtype)) {
            return true;
        }
    }
    return false;
}

/* RFC 5173 5.2: "" matches every type, "type" a main type, "type/sub" a
 * full type; a string that begins or ends with '/' or holds more than one
 * matches none. Case-insensitive. */
static bool
type_string_matches(const struct sieve_string *want, struct span type, struct span subtype)
{
    if (want->len == 0) {
        return true;
    }
    ASSERT(want->text != NULL);
    const char *slash = memchr(want->text, '/', want->len);
    if (slash == NULL) {
        return type.len == want->len && strncasecmp(type.ptr, want->text, want->len) == 0;
    }
    size_t type_len = (size_t)(slash - want->text);
    size_t sub_len = want->len - type_len - 1;
    if (type_len == 0 || sub_len == 0 || memchr(slash + 1, '/', sub_len) != NULL) {
        return false;
    }
    return type.len == type_len && subtype.len == sub_len &&
           strncasecmp(type.ptr, want->text, type_len) == 0 &&
           strncasecmp(subtype.ptr, slash + 1, sub_len) == 0;
}

static struct span
part_charset(const struct imap_mime_part *part)
{
    size_t pos = 0;
    struct imap_rfc822_param param;
    while (part->params.len > 0 &&
           imap_rfc822_param_next(part->params.ptr, part->params.len, &pos, &param)) {
        if (span_equals_nocase(param.name, "charset") && param.value.ptr != NULL) {
            return span_make(param.value.ptr, param.value.len);
        }
    }
    return span_make(NULL, 0);
}

/* Length of the header block at the start of header[0..header_len): up to
 * and including the empty line (*has_blank_out true), or all of it when
 * there is none. */
static size_t
header_block_len(const char *header, size_t header_len, bool *has_blank_out)
{
    size_t pos = 0;
    *has_blank_out = false;
    while (pos < header_len) {
        if (header[pos] == '\n' || (header[pos] == '\r' && pos + 1 < header_len &&
                                    header[pos + 1] == '\n')) {
            *has_blank_out = true;
            return line_after(header, header_len, pos);
        }
        pos = line_after(header, header_len, pos);
    }
    return header_len;
}

/* The start of the line after the one at pos (len when it is the last). */
static size_t
line_after(const char *s, size_t len, size_t pos)
{
    ASSERT(pos <= len);
    const char *lf = memchr(s + pos, '\n', len - pos);
    return lf == NULL ? len : (size_t)(lf - s) + 1;
}

/* Room for more bytes after len; false (is_over set when the reason is
 * the bound) when it cannot be had. */
static bool
buf_reserve(struct body_buf *buf, size_t more)
{
    if (more <= buf->cap - buf->len && buf->bytes != NULL) {
        return true;
    }
    if (more > SIEVE_BODY_DECODED_BYTES_MAX - buf->len) {
        buf->is_over = true;
        return false;
    }
    size_t want = buf->len + more;
    char *bytes = realloc(buf->bytes, want > 0 ? want : 1);
    if (bytes == NULL) {
        return false;
    }
    buf->bytes = bytes;
    buf->cap = want;
    return true;
}

/* base64 with bytes outside the alphabet: RFC 2045 6.8 says to ignore
 * them, so decode again from a copy without them (the strict decoder
 * stops at the first; this path is for broken mail only). Replaces what
 * decoded holds. Returns 0, -ENOMEM or -E2BIG. */
static int
decode_base64_lenient(const char *raw, size_t raw_len, struct body_buf *decoded)
{
    char *clean = malloc(raw_len > 0 ? raw_len : 1);
    if (clean == NULL) {
        return -ENOMEM;
    }
    size_t clean_len = 0;
    for (size_t i = 0; i < raw_len; i++) {
        unsigned char c = (unsigned char)raw[i];
        bool is_digit = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
        if (is_digit) {
            clean[clean_len++] = (char)c;
        }
    }
    decoded->len = 0;
    long n = imap_decode_base64_stream(clean, clean_len, buf_emit, decoded);
    free(clean);
    if (decoded->is_over) {
        return -E2BIG;
    }
    ASSERT(n >= 0); /* only alphabet bytes are left */
    return 0;
}

/* Doubles the room (at least 64 bytes more), up to the bound. Returns 0,
 * -E2BIG when the buffer is already at the bound, or -ENOMEM. */
static int
buf_grow(struct body_buf *buf)
{
    ASSERT(buf->cap <= SIEVE_BODY_DECODED_BYTES_MAX);
    size_t more = buf->cap < 64 ? 64 : buf->cap;
    if (more > SIEVE_BODY_DECODED_BYTES_MAX - buf->cap) {
        more = SIEVE_BODY_DECODED_BYTES_MAX - buf->cap;
    }
    if (more == 0) {
        buf->is_over = true;
        return -E2BIG;
    }
    char *bytes = realloc(buf->bytes, buf->cap + more);
    if (bytes == NULL) {
        return -ENOMEM;
    }
    buf->bytes = bytes;
    buf->cap += more;
    return 0;
}

/* imap_decode emit callback: bytes past the reserved room mean the part
 * decodes to more than the bound allows. */
static void
buf_emit(void *ctx, const char *bytes, size_t len)
{
    struct body_buf *buf = ctx;
    if (len > buf->cap - buf->len) {
        buf->is_over = true;
        return;
    }
    memcpy(buf->bytes + buf->len, bytes, len);
    buf->len += len;
}
