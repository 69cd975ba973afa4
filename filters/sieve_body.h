/*
 * filters/sieve_body.h - the text the Sieve "body" test (RFC 5173)
 * matches: the raw body (:raw), the decoded MIME parts whose type matches
 * (:content), or the text parts (:text), each handed to a callback one
 * piece at a time. Transfer encodings (base64, quoted-printable) are
 * decoded and text converted to UTF-8 from its charset for :content and
 * :text. Pure: the message is in memory; bounded by nesting depth, part
 * count and bytes decoded.
 */
#ifndef TOASTER_FILTERS_SIEVE_BODY_H
#define TOASTER_FILTERS_SIEVE_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/sieve_tree.h"

#define SIEVE_BODY_DEPTH_MAX 16u           /* nested multiparts */
#define SIEVE_BODY_PARTS_MAX 1024u         /* parts looked at */
#define SIEVE_BODY_DECODED_BYTES_MAX (8u * 1024u * 1024u)

/* Called once per piece; returns 0 to go on, 1 to stop (a match was
 * found), < 0 to stop with that error. */
typedef int (*sieve_body_piece_fn)(void *ctx, const char *text, size_t len);

/* Walks the message header[0..header_len) (the top-level header block,
 * which gives the top-level Content-Type) and body[0..body_len) with
 * transform. For SIEVE_BODY_CONTENT, content_types[0..type_count) are the
 * test's strings: "" matches every part, "type" a main type, "type/sub" a
 * full type (case-insensitive); a multipart's prologue/epilogue pieces
 * are handed over when its type matches (RFC 5173 5.2). Pieces, in
 * document order: a matching leaf part's content, transfer-decoded
 * (base64 ignoring bytes outside its alphabet, quoted-printable) and, for
 * text types, converted to UTF-8 (no charset, US-ASCII, UTF-8 and charsets
 * iconv does not know pass unchanged), an empty part as an empty piece; a
 * matching multipart's prologue and epilogue, each when not empty,
 * boundary lines excluded; a matching message/rfc822 part's nested header
 * block without its empty line. The search goes into every multipart and
 * message/rfc822 whatever their own type. :raw is body[0..body_len) as
 * one piece and never parses (no MIME bound applies to it); :text is
 * :content "text" (content_types ignored). header may run into the body
 * (the block ends at its empty line) and need not be adjacent to body
 * (then the two are copied into one buffer). Returns the callback's 1, 0
 * when every piece was seen, or < 0 (-ENOMEM, -E2BIG past a bound: a part
 * deeper than SIEVE_BODY_DEPTH_MAX containers, more than
 * SIEVE_BODY_PARTS_MAX parts, more than SIEVE_BODY_DECODED_BYTES_MAX
 * bytes handed over in all; or the callback's error). */
int sieve_body_walk(const char *header, size_t header_len, const char *body, size_t body_len,
                    enum sieve_body_transform transform, const struct sieve_string *content_types,
                    size_t type_count, sieve_body_piece_fn piece, void *ctx);

#endif
