/*
 * proto/imap/imap_text.h - text as SEARCH (and later Sieve) compares it:
 * RFC 2047 encoded words in header values, charsets to UTF-8, and a
 * case-insensitive "contains" over UTF-8.
 *
 * Pure protocol code: no I/O, and no allocation of our own. Charsets other
 * than US-ASCII, UTF-8 and ISO-8859-1 go through iconv(3) (glibc), whose
 * descriptors are opened and closed inside one call or one struct
 * imap_text_conv, so any thread may use this; iconv_open() allocates and
 * may load a gconv module once, which is why charset work belongs on
 * worker threads. Stack: a finder is about 5 KiB, header decoding uses
 * 2 KiB.
 *
 * Limits: a decoded header value is at most IMAP_TEXT_HEADER_BYTES_MAX
 * bytes (the caller's buffer; what does not fit is cut at a character
 * boundary and not searched); charset names at most
 * IMAP_TEXT_CHARSET_NAME_MAX bytes; a folded search string at most
 * IMAP_TEXT_NEEDLE_BYTES_MAX bytes. Every function is linear in its input.
 *
 * Case folding (imap_text_fold): a simple, length-preserving subset of
 * Unicode case folding (CaseFolding.txt status C and S), chosen to cover
 * the languages our users write in without tables:
 *   - ASCII A-Z;
 *   - Latin-1: U+00C0..U+00DE (not U+00D7) to U+00E0..U+00FE, U+00B5
 *     (micro sign) to U+03BC;
 *   - Latin Extended-A U+0100..U+017F: the upper/lower pairs, U+0178 to
 *     U+00FF, U+017F (long s) to 's'; U+0130 (dotted I) is left alone;
 *   - Greek U+0386..U+03AB to lower case, final sigma U+03C2 to U+03C3;
 *   - Cyrillic U+0400..U+042F to U+0430..U+045F.
 * Not done (Dovecot's i;unicode-casemap does them): full foldings that
 * change length (German sharp s to "ss"), decomposition (so "cafe" does
 * not match "caf\u00e9"), other scripts. Invalid UTF-8 becomes U+FFFD
 * before folding, on both sides.
 */
#ifndef TOASTER_PROTO_IMAP_TEXT_H
#define TOASTER_PROTO_IMAP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/span.h"

/* A decoded header value the matchers look at (bytes of UTF-8). */
#define IMAP_TEXT_HEADER_BYTES_MAX (8u * 1024)
/* A charset name ("ISO-8859-15"); longer names are unknown charsets. */
#define IMAP_TEXT_CHARSET_NAME_MAX 64u
/* A folded search string; SEARCH answers BAD above it. */
#define IMAP_TEXT_NEEDLE_BYTES_MAX 1024u
/* Working buffer of a finder: the tail of the previous input plus a chunk. */
#define IMAP_TEXT_FINDER_BYTES (4u * 1024 + IMAP_TEXT_NEEDLE_BYTES_MAX)

/* A charset converter to UTF-8. Fields are private. */
struct imap_text_conv {
    int   kind;
    void *cd; /* iconv_t when kind is iconv */
};

/* Open a converter for charset (a MIME charset name, any case). Returns 0,
 * or -EINVAL when the name is not a charset we (or iconv) know. A name of
 * length 0 means US-ASCII. Close with imap_text_conv_close(). */
int imap_text_conv_open(struct imap_text_conv *conv, struct span charset);

/* Convert in[0..len) to UTF-8 into out[0..out_bytes). Invalid input bytes
 * become U+FFFD. Stops when out cannot take the next character (never
 * writes a partial one) or, unless is_final, before an incomplete
 * multi-byte sequence at the end of in (the caller passes those bytes
 * again with the next input). Sets *used_out to the input bytes consumed
 * and returns the bytes written. */
size_t imap_text_conv_run(struct imap_text_conv *conv, const char *in, size_t len, bool is_final,
                          char *out, size_t out_bytes, size_t *used_out);

/* Release the converter (iconv_close); safe on a converter whose open
 * failed. */
void imap_text_conv_close(struct imap_text_conv *conv);

/* One-shot conversion of a whole text: the UTF-8 length written (cut at
 * out_bytes on a character boundary), or -1 for an unknown charset. */
long imap_text_to_utf8(struct span charset, const char *in, size_t len, char *out,
                       size_t out_bytes);

/* Decode a raw header field value (folding kept, as imap_rfc822 gives it)
 * into UTF-8: CRLF before white space is removed (the white space stays),
 * RFC 2047 encoded words (B and Q, "charset*lang" allowed) are decoded and
 * white space between two adjacent encoded words is dropped; adjacent
 * words in the same charset are converted together, so a character split
 * across them survives. A word in an unknown charset, or malformed, stays
 * as it was. Other 8-bit bytes are taken as UTF-8 (invalid ones become
 * U+FFFD). Returns the bytes written, at most out_bytes (cut on a
 * character boundary). */
size_t imap_text_decode_header(const char *value, size_t len, char *out, size_t out_bytes);

/* Case-fold UTF-8 (see the top of this file) into out. Returns the bytes
 * written; stops before a character that does not fit (the fold never
 * makes text longer than 3 bytes per input byte; out_bytes >= 3 * len
 * always suffices). */
size_t imap_text_fold(const char *utf8, size_t len, char *out, size_t out_bytes);

/* Streaming "contains": feed UTF-8 text in pieces of any size (a
 * character may be split between pieces); the finder folds it and looks
 * for the needle, which must already be folded (imap_text_fold) and stay
 * valid while the finder is used. Fields are private. */
struct imap_text_finder {
    const char   *needle;
    size_t        needle_len;
    size_t        buf_len;     /* folded bytes in buf (the tail kept + new) */
    unsigned char partial[4];  /* an incomplete UTF-8 sequence from the last piece */
    size_t        partial_len;
    bool          is_found;
    char          buf[IMAP_TEXT_FINDER_BYTES];
};

/* Start a search; needle_len <= IMAP_TEXT_NEEDLE_BYTES_MAX (asserted). An
 * empty needle is found at once. */
void imap_text_finder_init(struct imap_text_finder *finder, const char *needle,
                           size_t needle_len);

/* Feed the next piece; returns true once the needle has been seen (further
 * feeding is then free). An incomplete UTF-8 sequence at the end of the
 * piece waits for the next one, so the answer for text that ends inside a
 * character comes only from imap_text_finder_end(). */
bool imap_text_finder_feed(struct imap_text_finder *finder, const char *utf8, size_t len);

/* End of the text: an incomplete UTF-8 sequence still waiting becomes one
 * U+FFFD, as imap_text_fold() reads a text that ends inside a character,
 * and is searched. Returns true when the needle has been seen in the whole
 * text. Feeding after it goes on with a new character (the U+FFFD stays in
 * the searched text); calling it again changes nothing. */
bool imap_text_finder_end(struct imap_text_finder *finder);

/* Whole-text convenience: does utf8[0..len) contain the folded needle? */
bool imap_text_contains(const char *utf8, size_t len, const char *needle, size_t needle_len);

#endif
