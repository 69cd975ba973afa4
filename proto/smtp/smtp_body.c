/*
 * proto/smtp/smtp_body.c - streaming decoders for DATA and BDAT bodies.
 *
 * Turns the bytes a client sends after DATA (or inside BDAT chunks) into the
 * bytes we store: CRLF line ends, dots unstuffed, the end of DATA found.
 * Owns only its few bytes of state; the caller owns both buffers. Pure, no
 * allocation, runs on the reactor thread of the connection. Work is linear
 * in the input: every step either consumes an input byte or moves to a state
 * whose next step does (at most two such steps in a row, asserted), and the
 * text inside a line is copied in one run, so a line of any length costs
 * nothing but the copy. The caller bounds the total by the message size.
 *
 * The DATA grammar, with a line end being a real CRLF or a bare LF (a bare
 * CR is body content and never ends a line):
 *  - a line of exactly "." ends DATA only when it began after a real CRLF
 *    (or at the very start of DATA) and is ended by a real CRLF, so all five
 *    bytes of <CRLF>.<CRLF> are really there;
 *  - any other line of exactly "." (next to a bare LF) is content and is
 *    stored as "." plus CRLF. It is not unstuffed: RFC 5321 section 4.5.2
 *    only deletes the leading dot of a line that has other characters, and
 *    keeping it stores what was sent, byte for byte apart from line ends,
 *    instead of turning a smuggling attempt into an innocent empty line;
 *  - a line starting with "." and having other characters (a bare CR
 *    counts) loses that first "." whatever kind of line end preceded it;
 *  - a bare LF becomes CRLF and is counted, a bare CR is kept and counted.
 *
 * Output is produced before it is certain only when it cannot change: a CR,
 * a line-start ".", or ".\r" at a line start is held in the state until the
 * next byte decides it, which is what makes any split of the input, and
 * any output size from 2 bytes up, give the same bytes.
 */
#include "proto/smtp/smtp_body.h"

#include <string.h>

#include "core/assertions.h"

/* The largest single step writes "\r\n"; the header promises callers that
 * 2 bytes of room are always enough to make progress. */
#define SMTP_BODY_STEP_BYTES_MAX 2

enum data_state {
    DATA_LINE_START_REAL = 1, /* line start after a real CRLF, or start of DATA */
    DATA_LINE_START_BARE,     /* line start after a bare LF */
    DATA_MID,                 /* inside a line, nothing held */
    DATA_CR,                  /* inside a line, a CR held: CRLF or bare CR? */
    DATA_DOT_REAL,            /* "." held at a real line start */
    DATA_DOT_REAL_CR,         /* ".\r" held at a real line start: LF ends DATA */
    DATA_DOT_BARE,            /* "." held at a line start after a bare LF */
    DATA_DOT_BARE_CR,         /* ".\r" held there: LF makes a content "." line */
    DATA_DONE,                /* end of data seen; nothing more is consumed */
};

enum bdat_state {
    BDAT_NORMAL = 1, /* nothing held */
    BDAT_CR,         /* a CR held: CRLF or bare CR? */
};

static size_t copy_run(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_room);

void
smtp_data_decoder_init(struct smtp_data_decoder *decoder)
{
    ASSERT(decoder != NULL);
    memset(decoder, 0, sizeof(*decoder));
    decoder->state = DATA_LINE_START_REAL;
}

enum smtp_body_status
smtp_data_decode(struct smtp_data_decoder *decoder, const uint8_t *in, size_t in_len,
                 size_t *in_used, uint8_t *out, size_t out_bytes, size_t *out_len)
{
    ASSERT(decoder != NULL);
    ASSERT(decoder->state >= DATA_LINE_START_REAL);
    ASSERT(decoder->state <= DATA_DONE);
    if (in_len > 0) {
        ASSERT(in != NULL);
    }
    ASSERT(in_used != NULL);
    ASSERT(out != NULL);
    ASSERT(out_bytes >= SMTP_BODY_STEP_BYTES_MAX);
    ASSERT(out_len != NULL);

    enum data_state state = (enum data_state)decoder->state;
    size_t i = 0;
    size_t o = 0;
    /* Steps that consume nothing; each hands the byte to a state that
     * consumes it within two more steps, so this never exceeds 2. */
    unsigned stalls = 0;

    while (i < in_len && out_bytes - o >= SMTP_BODY_STEP_BYTES_MAX && state != DATA_DONE) {
        uint8_t c = in[i];
        size_t i_before = i;
        switch (state) {
        case DATA_LINE_START_REAL:
        case DATA_LINE_START_BARE:
            if (c == '.') {
                state = state == DATA_LINE_START_REAL ? DATA_DOT_REAL : DATA_DOT_BARE;
                i++;
            } else {
                /* CR, LF and text behave as inside a line. */
                state = DATA_MID;
            }
            break;
        case DATA_MID:
            if (c == '\r') {
                state = DATA_CR;
                i++;
            } else if (c == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                decoder->bare_lf_count++;
                state = DATA_LINE_START_BARE;
                i++;
            } else {
                size_t n = copy_run(in + i, in_len - i, out + o, out_bytes - o);
                i += n;
                o += n;
            }
            break;
        case DATA_CR:
            if (c == '\n') {
                out[o++] = '\r';
                out[o++] = '\n';
                state = DATA_LINE_START_REAL;
                i++;
            } else {
                /* A bare CR is content; the byte after it is looked at
                 * again inside the line (it may be another CR). */
                out[o++] = '\r';
                decoder->bare_cr_count++;
                state = DATA_MID;
            }
            break;
        case DATA_DOT_REAL:
        case DATA_DOT_BARE:
            if (c == '\r') {
                state = state == DATA_DOT_REAL ? DATA_DOT_REAL_CR : DATA_DOT_BARE_CR;
                i++;
            } else if (c == '\n') {
                /* "." then a bare LF: a content line, kept as ".". The LF
                 * is then normalised and counted inside the line. */
                out[o++] = '.';
                state = DATA_MID;
            } else {
                /* A dot with text after it: unstuff, i.e. drop the dot. */
                state = DATA_MID;
            }
            break;
        case DATA_DOT_REAL_CR:
            if (c == '\n') {
                state = DATA_DONE;
                i++;
            } else {
                /* ".\r" then more: the line has other characters, so the
                 * dot is dropped and the CR decided as usual. */
                state = DATA_CR;
            }
            break;
        case DATA_DOT_BARE_CR:
            if (c == '\n') {
                /* ".\r\n" after a bare LF: not all five bytes are real,
                 * so this is a content "." line. */
                out[o++] = '.';
            }
            state = DATA_CR;
            break;
        case DATA_DONE:
            /* The loop condition excludes it. */
            ASSERT(state != DATA_DONE);
            break;
        }
        if (i == i_before) {
            stalls++;
            ASSERT(stalls <= 2);
        } else {
            stalls = 0;
        }
    }

    decoder->state = state;
    decoder->out_total += o;
    *in_used = i;
    *out_len = o;
    return state == DATA_DONE ? SMTP_BODY_DONE : SMTP_BODY_NEED_MORE;
}

void
smtp_bdat_decoder_init(struct smtp_bdat_decoder *decoder)
{
    ASSERT(decoder != NULL);
    memset(decoder, 0, sizeof(*decoder));
    decoder->state = BDAT_NORMAL;
}

void
smtp_bdat_decode(struct smtp_bdat_decoder *decoder, const uint8_t *in, size_t in_len,
                 size_t *in_used, uint8_t *out, size_t out_bytes, size_t *out_len)
{
    ASSERT(decoder != NULL);
    ASSERT(decoder->state >= BDAT_NORMAL);
    ASSERT(decoder->state <= BDAT_CR);
    if (in_len > 0) {
        ASSERT(in != NULL);
    }
    ASSERT(in_used != NULL);
    ASSERT(out != NULL);
    ASSERT(out_bytes >= SMTP_BODY_STEP_BYTES_MAX);
    ASSERT(out_len != NULL);

    enum bdat_state state = (enum bdat_state)decoder->state;
    size_t i = 0;
    size_t o = 0;
    /* Every step consumes a byte, except a bare CR, after which the next
     * step (in BDAT_NORMAL) always does. */
    while (i < in_len && out_bytes - o >= SMTP_BODY_STEP_BYTES_MAX) {
        uint8_t c = in[i];
        if (state == BDAT_CR) {
            out[o++] = '\r';
            if (c == '\n') {
                out[o++] = '\n';
                i++;
            } else {
                decoder->bare_cr_count++;
            }
            state = BDAT_NORMAL;
        } else if (c == '\r') {
            /* Held back: the LF may be the first byte of the next call. */
            state = BDAT_CR;
            i++;
        } else if (c == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            decoder->bare_lf_count++;
            i++;
        } else {
            size_t n = copy_run(in + i, in_len - i, out + o, out_bytes - o);
            i += n;
            o += n;
        }
    }

    decoder->state = state;
    decoder->out_total += o;
    *in_used = i;
    *out_len = o;
}

/* Only called after the last chunk, so a CR still held has nothing after
 * it: it was a bare CR. out_bytes must be at least 1. */
size_t
smtp_bdat_finish(struct smtp_bdat_decoder *decoder, uint8_t *out, size_t out_bytes)
{
    ASSERT(decoder != NULL);
    ASSERT(decoder->state >= BDAT_NORMAL);
    ASSERT(decoder->state <= BDAT_CR);
    ASSERT(out != NULL);
    ASSERT(out_bytes >= 1);

    if (decoder->state != BDAT_CR) {
        return 0;
    }
    out[0] = '\r';
    decoder->bare_cr_count++;
    decoder->out_total++;
    decoder->state = BDAT_NORMAL;
    return 1;
}

/* Copy the text up to the next CR or LF (at least one byte, which the
 * caller knows is neither), within the output room. Returns the count. */
static size_t
copy_run(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_room)
{
    size_t limit = in_len < out_room ? in_len : out_room;
    ASSERT(limit > 0);
    size_t n = 1;
    while (n < limit && in[n] != '\r' && in[n] != '\n') {
        n++;
    }
    memcpy(out, in, n);
    return n;
}
