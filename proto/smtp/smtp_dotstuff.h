/*
 * proto/smtp/smtp_dotstuff.h - the client side of DATA: a message's bytes
 * into the wire form RFC 5321 section 4.5.2 asks for, incrementally, so a
 * spool file can be sent in pieces of any size.
 *
 * Pure: a few bits of state, no allocation. Rules:
 *  - a "." at the start of a line is doubled, wherever the chunk boundaries
 *    fall (a "." first in a chunk after a chunk that ended in CRLF, a CRLF
 *    split between chunks);
 *  - line ends go out as CRLF. A bare LF becomes CRLF and a bare CR becomes
 *    CRLF too, each counted: RFC 5321 section 2.3.8 allows CR and LF only
 *    together, and a bare CR or LF next to a "." is what SMTP smuggling
 *    uses on receivers that take them as line ends. We normalise rather
 *    than refuse: the message was accepted and must leave; what it carries
 *    is the same lines. (Our own spool already holds CRLF; bare CR is the
 *    only case that can reach here from our server, which keeps it.)
 *  - smtp_dotstuff_finish ends the body: a CRLF when the last line had
 *    none, then ".\r\n".
 * BDAT (RFC 3030) needs none of this: chunk bytes go out as they are.
 */
#ifndef TOASTER_PROTO_SMTP_DOTSTUFF_H
#define TOASTER_PROTO_SMTP_DOTSTUFF_H

#include <stddef.h>
#include <stdint.h>

/* One input byte makes at most this many output bytes ("\n" ending a bare
 * CR, then ".." at the new line start). */
#define SMTP_DOTSTUFF_STEP_BYTES_MAX 3
/* smtp_dotstuff_finish writes at most this many: "\r\n.\r\n". */
#define SMTP_DOTSTUFF_FINISH_BYTES_MAX 5

struct smtp_dotstuff {
    uint32_t state;         /* private */
    uint64_t bare_lf_count; /* LFs without a CR before them, sent as CRLF */
    uint64_t bare_cr_count; /* CRs without a LF after them, sent as CRLF */
    uint64_t in_total;      /* message bytes consumed */
    uint64_t out_total;     /* wire bytes produced, terminator included */
};

void smtp_dotstuff_init(struct smtp_dotstuff *stuff);

/* Encode in[0..in_len) into out[0..out_bytes); sets *in_used and *out_len.
 * Stops when the input is used or fewer than SMTP_DOTSTUFF_STEP_BYTES_MAX
 * bytes of out are left (out_bytes must be at least that), so call again
 * with the rest. Never fails; any bytes are a body. */
void smtp_dotstuff_encode(struct smtp_dotstuff *stuff, const uint8_t *in, size_t in_len,
                          size_t *in_used, uint8_t *out, size_t out_bytes, size_t *out_len);

/* End of the body: writes the terminator (with a CRLF first if the body did
 * not end with one) to out, which must hold SMTP_DOTSTUFF_FINISH_BYTES_MAX.
 * Returns the bytes written. The encoder must be initialised again before
 * the next message. */
size_t smtp_dotstuff_finish(struct smtp_dotstuff *stuff, uint8_t *out, size_t out_bytes);

#endif
