/*
 * proto/smtp/smtp_body.h - streaming decoders for message bodies: DATA
 * (dot-unstuffing, end-of-data detection) and BDAT chunks.
 *
 * Pure and incremental: a few bytes of state, no allocation, so a body line
 * of any length costs nothing. Both decoders write lines ending in CRLF:
 * a bare LF is normalised to CRLF (or counted, for the reject policy), a
 * bare CR is kept as it is and never ends a line.
 *
 * End of DATA is only <CRLF>.<CRLF> with every one of those five bytes
 * present in the input ("." alone on a line that began after a real CRLF and
 * ends in a real CRLF). A "." line next to a bare LF is body content, so
 * <LF>.<LF> or <LF>.<CRLF> smuggling can never split or end a message.
 */
#ifndef TOASTER_PROTO_SMTP_BODY_H
#define TOASTER_PROTO_SMTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_body_status {
    SMTP_BODY_NEED_MORE, /* all input used, or output full: call again */
    SMTP_BODY_DONE,      /* end of data seen; *in_used stops right after it */
};

struct smtp_data_decoder {
    uint32_t state;          /* private */
    uint64_t bare_lf_count;  /* bare LFs seen (and normalised) */
    uint64_t bare_cr_count;  /* CRs not followed by LF, kept as they are */
    uint64_t out_total;      /* bytes produced so far */
};

void smtp_data_decoder_init(struct smtp_data_decoder *decoder);

/* Consume DATA bytes from in[0..in_len). Writes body bytes (unstuffed, with
 * CRLF line ends, the final CRLF of the last line included, the "." line
 * excluded) to out[0..out_bytes) and sets *in_used and *out_len. Stops when
 * the input is used up, when out has fewer than 2 bytes left, or at end of
 * data (SMTP_BODY_DONE; the bytes after it are the next commands). out_bytes
 * must be at least 2. Never fails: every byte sequence is a valid body. */
enum smtp_body_status smtp_data_decode(struct smtp_data_decoder *decoder, const uint8_t *in,
                                       size_t in_len, size_t *in_used, uint8_t *out,
                                       size_t out_bytes, size_t *out_len);

struct smtp_bdat_decoder {
    uint32_t state;          /* private: a CR pending from the last chunk */
    uint64_t bare_lf_count;
    uint64_t bare_cr_count;
    uint64_t out_total;
};

void smtp_bdat_decoder_init(struct smtp_bdat_decoder *decoder);

/* Consume chunk bytes (the session bounds in_len by what remains of the
 * current BDAT chunk). Copies them to out, normalising bare LF to CRLF; a CR
 * at the very end of the input is held back until the next call (the
 * following LF may arrive in the next chunk). out_bytes must be at least 2.
 * Stops when input is used or out has fewer than 2 bytes left. */
void smtp_bdat_decode(struct smtp_bdat_decoder *decoder, const uint8_t *in, size_t in_len,
                      size_t *in_used, uint8_t *out, size_t out_bytes, size_t *out_len);

/* After BDAT LAST: flush a held-back CR (it was a bare CR). Writes at most 1
 * byte to out; returns how many. */
size_t smtp_bdat_finish(struct smtp_bdat_decoder *decoder, uint8_t *out, size_t out_bytes);

#endif
