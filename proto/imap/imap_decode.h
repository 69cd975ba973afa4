/*
 * proto/imap/imap_decode.h - Content-Transfer-Encoding decoders (RFC 2045
 * section 6.7 quoted-printable, 6.8 base64) for IMAP BINARY (RFC 3516) and
 * for anyone else who needs a MIME part's decoded bytes.
 *
 * Pure functions over caller buffers: no allocation, no I/O, any thread.
 * Work is linear in the input. The output never needs more bytes than the
 * input (out_bytes >= len always suffices), so a caller can size its buffer
 * from the part's encoded length.
 */
#ifndef TOASTER_PROTO_IMAP_DECODE_H
#define TOASTER_PROTO_IMAP_DECODE_H

#include <stddef.h>

/* Decode base64 from in[0..len) into out[0..out_bytes). CR, LF, space and
 * tab are skipped anywhere; decoding stops at the first '=' (padding; what
 * follows it is ignored). A final incomplete quantum gives the whole bytes
 * it holds (2 digits: 1 byte, 3 digits: 2 bytes; a lone digit: none).
 * Returns the decoded length, or -1 when a byte outside the alphabet
 * appears before the padding or out_bytes is too small (out is then
 * partly written and must not be used). */
long imap_decode_base64(const char *in, size_t len, char *out, size_t out_bytes);

/* Decode quoted-printable from in[0..len) into out[0..out_bytes): "=XX"
 * (hex digits in either case) gives the byte, "=" followed by optional
 * space/tab and CRLF (or bare LF, or the end of the input) is a soft line
 * break and gives nothing, white space before a line end (CRLF, LF or the
 * end of the input) is dropped (RFC 2045: added by transports), and any
 * other "=" is kept literally with what follows it ("=ZZ" stays "=ZZ", as
 * most decoders do). Line ends are kept as they are. Returns the decoded
 * length, or -1 when out_bytes is too small. */
long imap_decode_qp(const char *in, size_t len, char *out, size_t out_bytes);

/* Streaming forms of the same decoders, for data too large to hold twice:
 * the decoded bytes go to emit(ctx, bytes, len) in order, in pieces of at
 * most IMAP_DECODE_CHUNK_BYTES (from a buffer on the stack). Return the
 * total decoded length, or -1 (base64: a byte outside the alphabet; emit
 * may already have been called with the bytes before it). */
#define IMAP_DECODE_CHUNK_BYTES 4096
typedef void imap_decode_emit_fn(void *ctx, const char *bytes, size_t len);
long imap_decode_base64_stream(const char *in, size_t len, imap_decode_emit_fn *emit, void *ctx);
long imap_decode_qp_stream(const char *in, size_t len, imap_decode_emit_fn *emit, void *ctx);

#endif
