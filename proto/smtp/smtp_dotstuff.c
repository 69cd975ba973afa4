/*
 * proto/smtp/smtp_dotstuff.c - dot-stuffing and line-end normalisation of
 * a message body for DATA, chunk by chunk.
 *
 * Owns two bits of state (at a line start; a CR was the last byte out);
 * the caller owns both buffers. Pure, runs wherever the delivery agent
 * reads its spool file. Linear: each input byte costs one step of at most
 * SMTP_DOTSTUFF_STEP_BYTES_MAX output bytes, and a run of ordinary bytes is
 * copied at once.
 */
#include "proto/smtp/smtp_dotstuff.h"

#include <string.h>

#include "core/assertions.h"

#define DOTSTUFF_AT_LINE_START 1u /* the next byte begins a line */
#define DOTSTUFF_AFTER_CR 2u      /* a CR went out; its LF is still owed */
#define DOTSTUFF_FINISHED 4u

void
smtp_dotstuff_init(struct smtp_dotstuff *stuff)
{
    ASSERT(stuff != NULL);
    memset(stuff, 0, sizeof(*stuff));
    stuff->state = DOTSTUFF_AT_LINE_START;
}

void
smtp_dotstuff_encode(struct smtp_dotstuff *stuff, const uint8_t *in, size_t in_len, size_t *in_used,
                     uint8_t *out, size_t out_bytes, size_t *out_len)
{
    ASSERT(stuff != NULL && in_used != NULL && out != NULL && out_len != NULL);
    ASSERT(in != NULL || in_len == 0);
    ASSERT(out_bytes >= SMTP_DOTSTUFF_STEP_BYTES_MAX);
    ASSERT((stuff->state & DOTSTUFF_FINISHED) == 0);
    size_t i = 0;
    size_t o = 0;
    uint32_t state = stuff->state;
    while (i < in_len && out_bytes - o >= SMTP_DOTSTUFF_STEP_BYTES_MAX) {
        uint8_t c = in[i];
        if ((state & DOTSTUFF_AFTER_CR) != 0) {
            state &= ~DOTSTUFF_AFTER_CR;
            if (c == '\n') {
                out[o++] = '\n';
                i++;
                state |= DOTSTUFF_AT_LINE_START;
                continue;
            }
            /* A bare CR: finish it as a line end, then handle c at the
             * start of the new line. */
            out[o++] = '\n';
            stuff->bare_cr_count++;
            state |= DOTSTUFF_AT_LINE_START;
        }
        if (c == '\r') {
            out[o++] = '\r';
            i++;
            state = DOTSTUFF_AFTER_CR;
            continue;
        }
        if (c == '\n') {
            out[o++] = '\r';
            out[o++] = '\n';
            i++;
            stuff->bare_lf_count++;
            state = DOTSTUFF_AT_LINE_START;
            continue;
        }
        if (c == '.' && (state & DOTSTUFF_AT_LINE_START) != 0) {
            out[o++] = '.';
        }
        state = 0;
        /* Copy the run of ordinary bytes up to the next CR or LF. */
        size_t room = out_bytes - o; /* at least 1: a step wrote at most 2 so far */
        size_t run = 0;
        while (run < room && i + run < in_len && in[i + run] != '\r' && in[i + run] != '\n') {
            run++;
        }
        ASSERT(run >= 1);
        memcpy(out + o, in + i, run);
        o += run;
        i += run;
    }
    stuff->state = state;
    stuff->in_total += i;
    stuff->out_total += o;
    *in_used = i;
    *out_len = o;
}

size_t
smtp_dotstuff_finish(struct smtp_dotstuff *stuff, uint8_t *out, size_t out_bytes)
{
    ASSERT(stuff != NULL && out != NULL);
    ASSERT(out_bytes >= SMTP_DOTSTUFF_FINISH_BYTES_MAX);
    ASSERT((stuff->state & DOTSTUFF_FINISHED) == 0);
    size_t o = 0;
    if ((stuff->state & DOTSTUFF_AFTER_CR) != 0) {
        out[o++] = '\n';
        stuff->bare_cr_count++;
    } else if ((stuff->state & DOTSTUFF_AT_LINE_START) == 0) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    out[o++] = '.';
    out[o++] = '\r';
    out[o++] = '\n';
    stuff->state = DOTSTUFF_FINISHED;
    stuff->out_total += o;
    return o;
}
