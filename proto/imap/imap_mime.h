/*
 * proto/imap/imap_mime.h - the MIME structure of a stored message
 * (RFC 2045, RFC 2046), as IMAP's BODY[n], BODYSTRUCTURE and ENVELOPE
 * need it.
 *
 * The caller holds the whole message in memory and provides a fixed array
 * of part records; the parser fills it in one pass, in document order
 * (part 0 is the message itself), with borrowed views into the message.
 * Broken MIME never fails the parse: a bad Content-Type counts as absent
 * (text/plain; charset=us-ascii), a boundary that never appears leaves a
 * multipart without children, a missing closing boundary ends the part at
 * the end of the message. Limits: parts_cap (at most IMAP_MIME_PARTS_MAX),
 * IMAP_MIME_DEPTH_MAX nesting levels, IMAP_MIME_HEADER_BYTES_MAX per
 * header block; past a limit the result says so (is_truncated) and the
 * extra structure is treated as plain body bytes.
 */
#ifndef TOASTER_PROTO_IMAP_MIME_H
#define TOASTER_PROTO_IMAP_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/span.h"


#define IMAP_MIME_NONE UINT32_MAX

#define IMAP_MIME_IS_MULTIPART 0x1u /* type "multipart" */
#define IMAP_MIME_IS_MESSAGE 0x2u   /* message/rfc822: first_child is the inner message */
#define IMAP_MIME_IS_TEXT 0x4u      /* type "text": BODYSTRUCTURE gives a line count */
#define IMAP_MIME_IS_DIGEST 0x8u    /* multipart/digest: children default to message/rfc822 */
#define IMAP_MIME_HAS_TYPE 0x10u    /* a valid Content-Type was found */
#define IMAP_MIME_IS_DEFAULT_RFC822 0x20u /* no Content-Type inside a digest */

struct imap_mime_part {
    uint32_t parent;       /* IMAP_MIME_NONE for part 0 */
    uint32_t first_child;  /* IMAP_MIME_NONE when none */
    uint32_t next_sibling; /* IMAP_MIME_NONE when last */
    uint32_t last_child;   /* parser bookkeeping */
    uint32_t depth;        /* 0 for the message itself */
    uint32_t flags;        /* IMAP_MIME_IS_* */
    size_t   header_offset;
    size_t   header_size;  /* blank line included */
    size_t   body_offset;  /* header_offset + header_size */
    size_t   body_size;    /* octets, the CRLF before a boundary excluded */
    size_t   body_lines;   /* LF count of the body (text and message parts) */
    /* Content-Type: type and subtype are empty when defaulted; params is
     * the raw rest after the subtype (iterate with imap_rfc822_param_next). */
    struct span type;
    struct span subtype;
    struct span params;
    struct span boundary;  /* raw, multipart only; empty when none */
    /* Raw field values (folding kept); ptr NULL when the field is absent. */
    struct span encoding;  /* first token of Content-Transfer-Encoding */
    struct span id;
    struct span description;
    struct span disposition;
    struct span language;
    struct span location;
    struct span md5;
};

struct imap_mime_result {
    size_t part_count;
    bool   is_truncated;        /* parts or depth limit reached */
    bool   is_header_truncated; /* a header block was cut at the bound */
};

/* Parse msg[0..len) into parts[0..parts_cap). parts_cap must be at least
 * 1 and at most IMAP_MIME_PARTS_MAX. Returns 0; never fails on content. */
int imap_mime_parse(const char *msg, size_t len, struct imap_mime_part *parts,
                    size_t parts_cap, struct imap_mime_result *result_out);

#endif
