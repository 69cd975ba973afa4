/*
 * proto/imap/imap_quote.h - IMAP strings (RFC 3501 / RFC 9051 section 4.3)
 * written into a bounded output buffer.
 *
 * struct imap_out is a caller-owned byte buffer with overflow tracking: a
 * write that does not fit writes nothing, sets is_overflow and every later
 * write is dropped too, so the buffer never holds a truncated token and the
 * caller learns at the end (one check) that the result is incomplete.
 *
 * NUL: RFC 3501 and RFC 9051 allow no NUL in any string, literal included
 * (CHAR8 = %x01-ff; only literal8 may carry it), yet header values of
 * stored mail can hold one. Every string writer here therefore sends
 * IMAP_QUOTE_NUL_REPLACEMENT in place of each NUL and, because that byte
 * is not valid UTF-8, always as a literal (even under IMAP_QUOTE_UTF8).
 * The length does not change. This is Dovecot's choice in
 * imap_append_string_for_humans() and the one imap_fetch makes for BODY[]
 * data, so a client sees the same byte whichever item it fetched.
 */
#ifndef TOASTER_PROTO_IMAP_QUOTE_H
#define TOASTER_PROTO_IMAP_QUOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Flags for the string writers. */
#define IMAP_QUOTE_UTF8 0x1u   /* 8-bit bytes may go in a quoted string (UTF8=ACCEPT) */
#define IMAP_QUOTE_HUMANS 0x2u /* Dovecot's "for humans" form, see imap_out_produced() */

/* The byte a NUL is sent as inside a literal (see the top of this file). */
#define IMAP_QUOTE_NUL_REPLACEMENT 0x80u

struct imap_out {
    char  *buf;
    size_t cap;         /* bytes buf can hold */
    size_t len;         /* bytes written so far (never > cap) */
    bool   is_overflow; /* a write did not fit; len stays where it was */
};

/* Start writing into buf[0..cap). buf may be NULL when cap is 0 (a dry run
 * that only learns is_overflow). */
void imap_out_init(struct imap_out *out, char *buf, size_t cap);

/* Append raw bytes / a C string / one byte / a decimal number. */
void imap_out_bytes(struct imap_out *out, const void *bytes, size_t len);
void imap_out_cstr(struct imap_out *out, const char *cstr);
void imap_out_char(struct imap_out *out, char c);
void imap_out_uint(struct imap_out *out, uint64_t value);

/* True when len bytes can be sent as a quoted string under flags: no NUL,
 * CR or LF, and no 8-bit byte unless IMAP_QUOTE_UTF8. */
bool imap_quote_is_quotable(const char *s, size_t len, unsigned flags);

/* string: "..." with '"' and '\' escaped when quotable, else a literal
 * {len}CRLF followed by the bytes, each NUL sent as
 * IMAP_QUOTE_NUL_REPLACEMENT. Either form is written whole or not at all
 * (is_overflow). */
void imap_out_string(struct imap_out *out, const char *s, size_t len, unsigned flags);

/* nstring: NIL when s is NULL, else as imap_out_string. */
void imap_out_nstring(struct imap_out *out, const char *s, size_t len, unsigned flags);

/* astring: an atom when every byte is an ATOM-CHAR or ']' (RFC 3501
 * ASTRING-CHAR) and len > 0, else as imap_out_string. */
void imap_out_astring(struct imap_out *out, const char *s, size_t len, unsigned flags);

/* A value that is decoded on the fly (quoted-pairs removed, folding
 * dropped ...) is written through a producer: a function that hands its
 * bytes, in order, to imap_quote_sink_put(). It is called twice (once to
 * measure, once to write) and must give the same bytes both times. */
struct imap_quote_sink;
typedef void imap_quote_producer_fn(const void *arg, struct imap_quote_sink *sink);
void imap_quote_sink_put(struct imap_quote_sink *sink, const char *bytes, size_t len);

/* Write the produced bytes as an IMAP string; a NUL makes it a literal and
 * is sent as IMAP_QUOTE_NUL_REPLACEMENT, as in imap_out_string(). Without
 * IMAP_QUOTE_HUMANS: a quoted string with escapes when quotable, else a
 * literal. With it (what
 * Dovecot uses for Subject and display names): line breaks are dropped,
 * tabs become spaces, runs of white space become one space and leading and
 * trailing white space go; the result is a literal when anything had to
 * change or it holds '"', '\' or (without IMAP_QUOTE_UTF8) an 8-bit byte,
 * else a plain quoted string; all white space gives "". */
void imap_out_produced(struct imap_out *out, imap_quote_producer_fn *fn, const void *arg,
                       unsigned flags);

/* Bytes imap_out_produced() would put inside the quotes or literal. */
size_t imap_quote_produced_len(imap_quote_producer_fn *fn, const void *arg, unsigned flags);

#endif
