/*
 * proto/imap/imap_reader.c - IMAP command framing (see imap_reader.h).
 *
 * Owns nothing but its state: the command buffer belongs to the caller and
 * streamed literal chunks borrow from the caller's input. Runs on the
 * reactor thread that owns the connection; no allocation, no I/O. Work per
 * feed call is linear in the bytes consumed. Every byte of a command is
 * bounded: line text by line_bytes_max and the buffer, literals by their
 * limits, literal count by literal_count_max, and skipped bytes of a
 * refused command by discard_bytes_max (beyond it the reader gives up: the
 * session says BYE).
 *
 * A refused command is discarded with its framing intact: the reader keeps
 * the last bytes of each skipped line so it can still see a literal
 * announcement and skip the literal, so the next command starts where the
 * client thinks it does. A synchronising literal in a refused command ends
 * the command at once, since the client waits for a continuation we never
 * send.
 */
#include "proto/imap/imap_reader.h"

#include <assert.h>
#include <string.h>

#include "core/assertions.h"

/* "~{" + 20 digits + "+}" fits the discard tail. */
#define IMAP_READER_ANNOUNCE_BYTES_MAX 24
#define IMAP_READER_DIGITS_MAX 20

static_assert(IMAP_READER_ANNOUNCE_BYTES_MAX <= sizeof(((struct imap_reader *)0)->tail),
              "tail holds an announcement");
static_assert(IMAP_LITERALS_MAX_DEFAULT <= IMAP_LITERALS_CEILING, "literal default");
static_assert(IMAP_INLINE_BYTES_MAX_DEFAULT <= IMAP_LITERAL_BYTES_MAX_DEFAULT, "inline");

enum imap_reader_state {
    RD_LINE = 0,
    RD_LITERAL_INLINE,
    RD_LITERAL_STREAM,
    RD_DISCARD_LINE,
    RD_DISCARD_LITERAL,
    RD_FATAL,
};

struct announce {
    uint64_t len;       /* UINT64_MAX when the digits overflow */
    size_t   bytes;     /* length of the announcement text */
    bool     is_sync;
    bool     is_binary;
};

static void command_clear(struct imap_reader *reader);
static enum imap_reader_event line_end(struct imap_reader *reader);
static enum imap_reader_event discard_line_end(struct imap_reader *reader);
static enum imap_reader_event discard_literal(struct imap_reader *reader, uint64_t n,
                                              enum imap_reader_error error);
static enum imap_reader_event end_command(struct imap_reader *reader,
                                          enum imap_reader_event event);
static void enter_discard(struct imap_reader *reader, enum imap_reader_error error);
static bool announce_find(const char *text, size_t len, struct announce *out);
static void tail_append(struct imap_reader *reader, const char *p, size_t n);
static void name_peek(struct imap_reader *reader);
static bool is_tag_char(unsigned char c);

void
imap_reader_config_default(struct imap_reader_config *config, uint64_t append_bytes_max)
{
    ASSERT(config != NULL);
    config->line_bytes_max = IMAP_LINE_BYTES_MAX_DEFAULT;
    config->literal_count_max = IMAP_LITERALS_MAX_DEFAULT;
    config->literal_bytes_max = IMAP_LITERAL_BYTES_MAX_DEFAULT;
    config->append_bytes_max = append_bytes_max;
    config->inline_bytes_max = IMAP_INLINE_BYTES_MAX_DEFAULT;
    config->nonsync_bytes_max = UINT64_MAX;
    config->discard_bytes_max = IMAP_DISCARD_BYTES_CEILING_DEFAULT;
}

void
imap_reader_init(struct imap_reader *reader, const struct imap_reader_config *config, char *buf,
                 size_t buf_bytes, struct imap_literal *literals)
{
    ASSERT(reader != NULL);
    ASSERT(config != NULL);
    ASSERT(buf != NULL);
    ASSERT(literals != NULL);
    ASSERT(buf_bytes > 0);
    ASSERT(config->inline_bytes_max <= buf_bytes);
    ASSERT(config->literal_count_max <= IMAP_LITERALS_CEILING);
    memset(reader, 0, sizeof(*reader));
    reader->config = *config;
    reader->buf = buf;
    reader->buf_bytes = buf_bytes;
    reader->literals = literals;
    command_clear(reader);
}

enum imap_reader_event
imap_reader_feed(struct imap_reader *reader, const char *in, size_t len, size_t *used_out)
{
    ASSERT(reader != NULL);
    ASSERT(used_out != NULL);
    if (len > 0) {
        ASSERT(in != NULL);
    }
    *used_out = 0;
    if (reader->state == RD_FATAL) {
        return IMAP_READER_FATAL;
    }
    if (reader->reset_pending) {
        command_clear(reader);
    }

    size_t used = 0;
    /* Each round consumes at least one byte or returns. */
    while (used < len) {
        const char *p = in + used;
        size_t avail = len - used;
        switch ((enum imap_reader_state)reader->state) {
        case RD_LINE: {
            if (reader->saw_cr && p[0] != '\n') {
                enter_discard(reader, IMAP_READER_BARE_CR);
                continue;
            }
            const char *lf = memchr(p, '\n', avail);
            size_t piece = lf != NULL ? (size_t)(lf - p) : avail;
            /* A CR is text only right before the LF (or at the very end of
             * the input, where the LF may come in the next feed). */
            size_t keep = piece;
            bool ends_cr = piece > 0 && p[piece - 1] == '\r';
            if (ends_cr) {
                keep--;
            }
            size_t fit = reader->config.line_bytes_max - reader->text_bytes;
            if (fit > reader->buf_bytes - reader->len) {
                fit = reader->buf_bytes - reader->len;
            }
            enum imap_reader_error error = IMAP_READER_OK;
            size_t good = keep;
            const char *nul = memchr(p, '\0', keep);
            const char *cr = memchr(p, '\r', keep);
            if (nul != NULL && (cr == NULL || nul < cr)) {
                good = (size_t)(nul - p);
                error = IMAP_READER_NUL_BYTE;
            } else if (cr != NULL) {
                good = (size_t)(cr - p);
                error = IMAP_READER_BARE_CR;
            }
            if (good > fit) {
                good = fit;
                error = IMAP_READER_LINE_TOO_LONG;
            }
            if (error != IMAP_READER_OK) {
                /* Keep what is good and fits, so the tag is there for the
                 * reply; skip the rest of the command. */
                memcpy(reader->buf + reader->len, p, good);
                reader->len += good;
                reader->text_bytes += good;
                used += good;
                enter_discard(reader, error);
                continue;
            }
            memcpy(reader->buf + reader->len, p, keep);
            reader->len += keep;
            reader->text_bytes += keep;
            if (lf == NULL) {
                reader->saw_cr = ends_cr;
                used += piece;
                break;
            }
            if (!ends_cr && !reader->saw_cr) {
                reader->has_bare_lf = true;
            }
            reader->saw_cr = false;
            used += piece + 1;
            enum imap_reader_event event = line_end(reader);
            if (event != IMAP_READER_NEED_MORE) {
                *used_out = used;
                return event;
            }
            break;
        }
        case RD_LITERAL_INLINE: {
            size_t n = avail;
            if ((uint64_t)n > reader->literal_left) {
                n = (size_t)reader->literal_left;
            }
            ASSERT(n <= reader->buf_bytes - reader->len);
            memcpy(reader->buf + reader->len, p, n);
            reader->len += n;
            reader->literal_left -= n;
            used += n;
            if (reader->literal_left == 0) {
                reader->state = RD_LINE;
                reader->line_start = reader->len;
            }
            break;
        }
        case RD_LITERAL_STREAM: {
            size_t n = avail;
            if ((uint64_t)n > reader->literal_left) {
                n = (size_t)reader->literal_left;
            }
            ASSERT(reader->literal_count > 0);
            const struct imap_literal *lit = &reader->literals[reader->literal_count - 1];
            reader->chunk.data = span_make(p, n);
            reader->chunk.literal_index = reader->literal_count - 1;
            reader->chunk.total = lit->len;
            reader->chunk.offset = lit->len - reader->literal_left;
            reader->literal_left -= n;
            reader->chunk.is_last = reader->literal_left == 0;
            used += n;
            if (reader->literal_left == 0) {
                reader->state = RD_LINE;
                reader->line_start = reader->len;
            }
            *used_out = used;
            return IMAP_READER_LITERAL_DATA;
        }
        case RD_DISCARD_LINE: {
            const char *lf = memchr(p, '\n', avail);
            size_t piece = lf != NULL ? (size_t)(lf - p) : avail;
            if ((uint64_t)piece > reader->config.discard_bytes_max - reader->discarded) {
                reader->error = IMAP_READER_DISCARD_TOO_BIG;
                reader->state = RD_FATAL;
                *used_out = used;
                return IMAP_READER_FATAL;
            }
            reader->discarded += piece;
            tail_append(reader, p, piece);
            if (lf == NULL) {
                used += piece;
                break;
            }
            used += piece + 1;
            enum imap_reader_event event = discard_line_end(reader);
            if (event != IMAP_READER_NEED_MORE) {
                *used_out = used;
                return event;
            }
            break;
        }
        case RD_DISCARD_LITERAL: {
            size_t n = avail;
            if ((uint64_t)n > reader->literal_left) {
                n = (size_t)reader->literal_left;
            }
            reader->literal_left -= n;
            used += n;
            if (reader->literal_left == 0) {
                reader->state = RD_DISCARD_LINE;
                reader->tail_len = 0;
            }
            break;
        }
        case RD_FATAL:
        default:
            ASSERT(false);
        }
    }
    *used_out = used;
    return IMAP_READER_NEED_MORE;
}

struct imap_command_text
imap_reader_command(const struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    return (struct imap_command_text){
        .text = reader->buf,
        .len = reader->len,
        .literals = reader->literals,
        .literal_count = reader->literal_count,
        .has_bare_lf = reader->has_bare_lf,
        .is_append = reader->is_append,
    };
}

const struct imap_reader_chunk *
imap_reader_chunk(const struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    return &reader->chunk;
}

enum imap_reader_error
imap_reader_error(const struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    return reader->error;
}

struct span
imap_reader_tag(const struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    size_t i = 0;
    while (i < reader->len && reader->buf[i] != ' ') {
        if (!is_tag_char((unsigned char)reader->buf[i])) {
            return span_make(NULL, 0);
        }
        i++;
    }
    if (i == 0) {
        return span_make(NULL, 0);
    }
    return span_make(reader->buf, i);
}

void
imap_reader_refuse_literal(struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    ASSERT(reader->literal_count > 0);
    ASSERT(reader->literals[reader->literal_count - 1].is_sync);
    /* Nothing of the literal has been read ("{0}" leaves us in RD_LINE). */
    ASSERT(!reader->reset_pending);
    ASSERT(reader->literal_left == reader->literals[reader->literal_count - 1].len);
    /* The tag stays readable until the next feed. */
    reader->state = RD_LINE;
    reader->reset_pending = true;
}

void
imap_reader_reset(struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    if (reader->state != RD_FATAL) {
        command_clear(reader);
    }
}

bool
imap_reader_is_mid_command(const struct imap_reader *reader)
{
    ASSERT(reader != NULL);
    if (reader->reset_pending) {
        return false;
    }
    return reader->len > 0 || reader->state != RD_LINE || reader->discarded > 0 ||
           reader->saw_cr;
}

const char *
imap_reader_error_name(enum imap_reader_error error)
{
    switch (error) {
    case IMAP_READER_OK:
        return "ok";
    case IMAP_READER_LINE_TOO_LONG:
        return "line too long";
    case IMAP_READER_NUL_BYTE:
        return "NUL byte";
    case IMAP_READER_BARE_CR:
        return "bare CR";
    case IMAP_READER_TOO_MANY_LITERALS:
        return "too many literals";
    case IMAP_READER_LITERAL_TOO_BIG:
        return "literal too big";
    case IMAP_READER_DISCARD_TOO_BIG:
        return "refused command too big to skip";
    }
    return "unknown";
}

/* Helpers. */

static void
command_clear(struct imap_reader *reader)
{
    reader->len = 0;
    reader->text_bytes = 0;
    reader->line_start = 0;
    reader->state = RD_LINE;
    reader->error = IMAP_READER_OK;
    reader->has_bare_lf = false;
    reader->saw_cr = false;
    reader->is_append = false;
    reader->name_known = false;
    reader->reset_pending = false;
    reader->literal_left = 0;
    reader->discarded = 0;
    reader->literal_count = 0;
    reader->tail_len = 0;
    memset(&reader->chunk, 0, sizeof(reader->chunk));
}

/* A line piece ended (its text is buf[line_start, len)). Either the command
 * is complete, or a literal follows. */
static enum imap_reader_event
line_end(struct imap_reader *reader)
{
    if (!reader->name_known) {
        name_peek(reader);
    }
    struct announce ann;
    if (!announce_find(reader->buf + reader->line_start, reader->len - reader->line_start,
                       &ann)) {
        return end_command(reader, IMAP_READER_COMMAND);
    }

    if (reader->literal_count >= reader->config.literal_count_max) {
        if (ann.is_sync) {
            reader->error = IMAP_READER_TOO_MANY_LITERALS;
            return end_command(reader, IMAP_READER_ERROR);
        }
        return discard_literal(reader, ann.len, IMAP_READER_TOO_MANY_LITERALS);
    }

    uint64_t limit = reader->is_append ? reader->config.append_bytes_max
                                       : reader->config.literal_bytes_max;
    uint64_t room = reader->buf_bytes - reader->len;
    bool is_inline = ann.len <= room &&
                     (!reader->is_append || ann.len <= reader->config.inline_bytes_max);
    bool is_too_big = ann.len > limit || (!reader->is_append && !is_inline);
    if (!ann.is_sync && ann.len > reader->config.nonsync_bytes_max) {
        is_too_big = true;
    }
    if (is_too_big) {
        if (ann.is_sync) {
            return end_command(reader, IMAP_READER_TOO_BIG);
        }
        return discard_literal(reader, ann.len, IMAP_READER_LITERAL_TOO_BIG);
    }

    struct imap_literal *lit = &reader->literals[reader->literal_count++];
    lit->announce_offset = reader->len - ann.bytes;
    lit->data_offset = reader->len;
    lit->len = ann.len;
    lit->is_sync = ann.is_sync;
    lit->is_binary = ann.is_binary;
    lit->is_streamed = !is_inline;
    reader->literal_left = ann.len;
    if (ann.len == 0) {
        reader->state = RD_LINE;
        reader->line_start = reader->len;
    } else {
        reader->state = is_inline ? RD_LITERAL_INLINE : RD_LITERAL_STREAM;
    }
    return ann.is_sync ? IMAP_READER_CONTINUE : IMAP_READER_NEED_MORE;
}

/* A skipped line ended; its last bytes are in the tail. */
static enum imap_reader_event
discard_line_end(struct imap_reader *reader)
{
    struct announce ann;
    size_t len = reader->tail_len;
    if (len > 0 && reader->tail[len - 1] == '\r') {
        len--; /* the CR of CRLF */
    }
    if (!announce_find(reader->tail, len, &ann) || ann.is_sync) {
        return end_command(reader, IMAP_READER_ERROR);
    }
    return discard_literal(reader, ann.len, reader->error);
}

/* Skip a non-synchronising literal of n bytes and the rest of the command,
 * then report error. */
static enum imap_reader_event
discard_literal(struct imap_reader *reader, uint64_t n, enum imap_reader_error error)
{
    if (reader->error == IMAP_READER_OK) {
        reader->error = error;
    }
    if (n > reader->config.discard_bytes_max - reader->discarded) {
        reader->error = IMAP_READER_DISCARD_TOO_BIG;
        reader->state = RD_FATAL;
        return IMAP_READER_FATAL;
    }
    reader->discarded += n;
    reader->literal_left = n;
    reader->tail_len = 0;
    reader->state = n > 0 ? RD_DISCARD_LITERAL : RD_DISCARD_LINE;
    return IMAP_READER_NEED_MORE;
}

static enum imap_reader_event
end_command(struct imap_reader *reader, enum imap_reader_event event)
{
    reader->state = RD_LINE;
    reader->reset_pending = true;
    return event;
}

/* Switch to skipping the rest of the command, keeping the current line's
 * last bytes so a literal announcement at its end is still seen. */
static void
enter_discard(struct imap_reader *reader, enum imap_reader_error error)
{
    if (!reader->name_known) {
        name_peek(reader);
    }
    reader->error = error;
    reader->state = RD_DISCARD_LINE;
    reader->tail_len = 0;
    tail_append(reader, reader->buf + reader->line_start, reader->len - reader->line_start);
    if (reader->saw_cr) {
        /* The CR held back at the end of the last feed is line text too. */
        tail_append(reader, "\r", 1);
        reader->saw_cr = false;
    }
}

/* Does text end in "{n}", "{n+}", "~{n}" or "~{n+}"? An atom cannot hold
 * '{' (RFC 3501 atom-specials) and a quoted string cannot end a line, so a
 * line ending this way always announces a literal. */
static bool
announce_find(const char *text, size_t len, struct announce *out)
{
    if (len < 3 || text[len - 1] != '}') {
        return false;
    }
    size_t end = len - 1;
    out->is_sync = true;
    if (text[end - 1] == '+') {
        out->is_sync = false;
        end--;
    }
    size_t start = end;
    while (start > 0 && text[start - 1] >= '0' && text[start - 1] <= '9') {
        start--;
    }
    if (start == end || start == 0 || text[start - 1] != '{') {
        return false;
    }
    if (end - start > IMAP_READER_DIGITS_MAX) {
        out->len = UINT64_MAX;
    } else {
        uint64_t value = 0;
        for (size_t i = start; i < end; i++) {
            uint64_t digit = (uint64_t)(text[i] - '0');
            if (value > (UINT64_MAX - digit) / 10) {
                value = UINT64_MAX;
                break;
            }
            value = value * 10 + digit;
        }
        out->len = value;
    }
    size_t brace = start - 1;
    out->is_binary = brace > 0 && text[brace - 1] == '~';
    size_t first = out->is_binary ? brace - 1 : brace;
    out->bytes = len - first;
    return true;
}

/* Keep the last sizeof(tail) bytes of a skipped line. */
static void
tail_append(struct imap_reader *reader, const char *p, size_t n)
{
    const size_t cap = sizeof(reader->tail);
    if (n >= cap) {
        memcpy(reader->tail, p + n - cap, cap);
        reader->tail_len = cap;
    } else {
        if (reader->tail_len + n > cap) {
            size_t drop = reader->tail_len + n - cap;
            memmove(reader->tail, reader->tail + drop, reader->tail_len - drop);
            reader->tail_len -= drop;
        }
        memcpy(reader->tail + reader->tail_len, p, n);
        reader->tail_len += n;
    }
}

/* Look at "tag SP [UID SP] name" at the start of the buffer to learn
 * whether this is APPEND, which selects the literal limit. */
static void
name_peek(struct imap_reader *reader)
{
    reader->name_known = true;
    const char *b = reader->buf;
    size_t len = reader->len;
    size_t i = 0;
    while (i < len && b[i] != ' ') {
        i++;
    }
    for (int word = 0; word < 2; word++) {
        if (i == len) {
            return;
        }
        i++; /* the space */
        size_t start = i;
        while (i < len && b[i] != ' ' && b[i] != '{' && b[i] != '~') {
            i++;
        }
        struct span name = span_make(b + start, i - start);
        if (span_equals_nocase(name, "APPEND")) {
            reader->is_append = true;
            return;
        }
        if (!span_equals_nocase(name, "UID")) {
            return;
        }
    }
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool
is_tag_char(unsigned char c)
{
    if (c <= 0x20 || c >= 0x7f) {
        return false;
    }
    return strchr("(){%*\"\\+", c) == NULL;
}
